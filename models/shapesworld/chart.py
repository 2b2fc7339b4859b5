"""A grouped bar chart as a PNG, with the Python standard library only
(zlib + struct): the demo's picture of the hard-negative accuracies. Text is
drawn with a 5x7 bitmap font (upper case, digits and a little punctuation),
so no plotting library is needed on a fresh machine.

    bar_chart(path, title, groups, series, lo=0, hi=100, line=50, line_label="chance")

groups: the x-axis groups (names); series: [(label, [value per group])],
one colour each, drawn side by side in every group and named in a legend.
"""
import struct
import zlib

# 5x7 glyphs, one row per entry (bit 4 is the leftmost pixel).
FONT = {
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E), "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F), "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02), "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E), "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E), "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    "A": (0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11), "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E), "D": (0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F), "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F), "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E), "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11), "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11), "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D), "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E), "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A), "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04), "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    " ": (0,) * 7, "+": (0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00),
    "-": (0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00), ".": (0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C),
    ",": (0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08), "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02), ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    ":": (0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00), "/": (0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00),
    "_": (0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F), "=": (0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00),
    "@": (0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E),
}
# Colour-blind-safe (Okabe-Ito) colours for the series.
COLOURS = [(0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233),
           (213, 94, 0), (240, 228, 66), (0, 0, 0)]
WHITE, BLACK, GREY, RED = (255, 255, 255), (0, 0, 0), (200, 200, 200), (200, 0, 0)


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(WHITE * (w * h))

    def rect(self, x0, y0, x1, y1, c):
        x0, x1 = max(0, min(x0, x1)), min(self.w, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.h, max(y0, y1))
        row = bytes(c) * (x1 - x0)
        for y in range(y0, y1):
            i = 3 * (y * self.w + x0)
            self.px[i:i + len(row)] = row

    def text(self, x, y, s, c=BLACK, scale=2):
        """Upper-cased s with its top-left corner at (x, y); returns the width."""
        for k, ch in enumerate(s.upper()):
            glyph = FONT.get(ch, FONT[" "])
            gx = x + k * 6 * scale
            for r, bits in enumerate(glyph):
                for col in range(5):
                    if bits & (0x10 >> col):
                        self.rect(gx + col * scale, y + r * scale, gx + (col + 1) * scale,
                                  y + (r + 1) * scale, c)
        return len(s) * 6 * scale

    def png(self, path):
        raw = b"".join(b"\x00" + bytes(self.px[3 * y * self.w:3 * (y + 1) * self.w])
                       for y in range(self.h))

        def chunk(t, d):
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

        data = (b"\x89PNG\r\n\x1a\n"
                + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
        with open(path, "wb") as f:
            f.write(data)


def text_width(s, scale=2):
    return len(s) * 6 * scale


def bar_chart(path, title, groups, series, lo=0.0, hi=100.0, line=50.0, line_label="chance"):
    n_g, n_s = len(groups), len(series)
    bar, gap = 18, 22
    group_w = n_s * bar + gap
    left, top, plot_h = 70, 50, 300
    legend_w = max([text_width(label) for label, _ in series] + [text_width(line_label)]) + 40
    w = left + n_g * group_w + 30 + legend_w
    h = top + plot_h + 70
    cv = Canvas(w, h)
    cv.text(left, 14, title)

    def y_of(v):
        v = min(max(v, lo), hi)
        return top + plot_h - int(round((v - lo) / (hi - lo) * plot_h))

    for t in range(int(lo), int(hi) + 1, 25):  # grid and y labels
        y = y_of(t)
        cv.rect(left, y, left + n_g * group_w, y + 1, GREY)
        lab = "%d" % t
        cv.text(left - 10 - text_width(lab), y - 7, lab)
    for g, name in enumerate(groups):
        x0 = left + g * group_w + gap // 2
        for s, (_, values) in enumerate(series):
            cv.rect(x0 + s * bar, y_of(values[g]), x0 + (s + 1) * bar - 2, y_of(lo),
                    COLOURS[s % len(COLOURS)])
        # One word per line under the group ("attribute_swap": two lines).
        for i, word in enumerate(name.replace("_", " ").split(" ")):
            cv.text(x0 + (n_s * bar - text_width(word)) // 2, top + plot_h + 10 + 20 * i, word)
    cv.rect(left, top, left + 2, top + plot_h + 1, BLACK)  # axes
    cv.rect(left, top + plot_h, left + n_g * group_w, top + plot_h + 2, BLACK)
    y = y_of(line)
    for x in range(left, left + n_g * group_w, 12):  # dashed reference line
        cv.rect(x, y - 1, x + 7, y + 2, RED)
    cv.text(left + n_g * group_w + 8, y - 7, line_label, RED)
    lx, ly = left + n_g * group_w + 30, y + 30
    for s, (label, _) in enumerate(series):
        cv.rect(lx, ly + 24 * s, lx + 14, ly + 24 * s + 14, COLOURS[s % len(COLOURS)])
        cv.text(lx + 22, ly + 24 * s, label)
    cv.png(path)
