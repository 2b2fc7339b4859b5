/* GPT-2's reversible byte -> code point alphabet: printable Latin-1 bytes map
 * to themselves, the other 68 (controls, space, 0x7F-0xA0, soft hyphen) to
 * U+0100 onwards in byte order. Computed, so no table to initialise. */
#include "tokenizer/tokenizer.h"

uint32_t dlv_byte_level_char(unsigned char b)
{
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33u + (b - 0x7Fu);
    if (b == 0xAD) return 256u + 33u + 34u;
    return b;
}

int dlv_byte_level_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xFF && cp != 0xAD)) return (int)cp;
    if (cp >= 256 && cp < 256 + 33) return (int)(cp - 256);
    if (cp >= 256 + 33 && cp < 256 + 67) return (int)(0x7F + cp - 289);
    if (cp == 256 + 67) return 0xAD;
    return -1;
}
