/* tools/data (CSV/TSV, JSONL, WebDataset, brace patterns) and tools/eval's
 * formats (Karpathy, SugarCrepe, Winoground, classification) on small files
 * written here, including malformed ones whose errors must name the file and
 * line. */
#include <archive.h>
#include <archive_entry.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "data/dataset.h"
#include "eval/formats.h"

static char tmpdir[64];

static char *path_in(const char *name)
{
    static char buf[4][512];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static const char *write_file(const char *name, const char *text)
{
    char *p = path_in(name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return p;
}

static void expect_error(dlv_status st, dlv_status want, const char *needle)
{
    assert_int_equal(st, want);
    if (!strstr(dlv_last_error(), needle)) {
        print_error("message '%s' lacks '%s'\n", dlv_last_error(), needle);
        fail();
    }
}

/* ---- CSV ---------------------------------------------------------------- */

static void test_csv_rfc4180(void **state)
{
    (void)state;
    const char *t = "\xEF\xBB\xBF" "filepath,title,n\r\n"
                    "a.jpg,\"a cat, sitting\",1\r\n"
                    "\n"
                    "\"b.jpg\",\"say \"\"hi\"\"\",\r\n"
                    "c.jpg,\"two\nlines\",3"; /* no final newline */
    dlv_table tab;
    assert_int_equal(dlv_table_parse("t.csv", t, strlen(t), ',', &tab), DLV_OK);
    assert_int_equal(tab.n_cols, 3);
    assert_int_equal(tab.n_rows, 3);
    assert_string_equal(tab.header[0], "filepath");
    assert_int_equal(dlv_table_column(&tab, "title"), 1);
    assert_int_equal(dlv_table_column(&tab, "nope"), -1);
    assert_string_equal(tab.cells[1], "a cat, sitting");
    assert_string_equal(tab.cells[3], "b.jpg");
    assert_string_equal(tab.cells[4], "say \"hi\"");
    assert_string_equal(tab.cells[5], ""); /* trailing separator: an empty field */
    assert_string_equal(tab.cells[7], "two\nlines");
    assert_int_equal(tab.line[0], 2);
    assert_int_equal(tab.line[1], 4);
    assert_int_equal(tab.line[2], 5);
    dlv_table_free(&tab);

    const char *tsv = "filepath\ttitle\nx.png\ta, b\n";
    assert_int_equal(dlv_table_parse("t.tsv", tsv, strlen(tsv), '\t', &tab), DLV_OK);
    assert_int_equal(tab.n_rows, 1);
    assert_string_equal(tab.cells[1], "a, b");
    dlv_table_free(&tab);
}

static void test_csv_errors(void **state)
{
    (void)state;
    dlv_table tab;
    const char *a = "filepath,title\na.jpg,\"open\n";
    expect_error(dlv_table_parse("bad.csv", a, strlen(a), ',', &tab), DLV_E_FORMAT,
                 "bad.csv:2: unterminated");
    const char *b = "filepath,title\na.jpg,x\"y\n";
    expect_error(dlv_table_parse("bad.csv", b, strlen(b), ',', &tab), DLV_E_FORMAT,
                 "bad.csv:2: a quote inside an unquoted field");
    const char *c = "filepath,title\na.jpg,\"x\"y\n";
    expect_error(dlv_table_parse("bad.csv", c, strlen(c), ',', &tab), DLV_E_FORMAT,
                 "bad.csv:2: text after the closing quote");
    const char *d = "filepath,title\na.jpg,x\nb.jpg\n";
    expect_error(dlv_table_parse("bad.csv", d, strlen(d), ',', &tab), DLV_E_FORMAT,
                 "bad.csv:3: 1 fields where the header has 2");
    expect_error(dlv_table_parse("e.csv", "", 0, ',', &tab), DLV_E_FORMAT, "e.csv: empty");
}

static void test_csv_dataset(void **state)
{
    (void)state;
    const char *p = write_file("d.csv", "filepath,title,long\nimg/a.jpg,a cat,a long cat\n"
                                        "/abs/b.jpg,a dog,a long dog\nimg/c.jpg,x,y\n");
    dlv_dataset ds = DLV_DATASET_INIT;
    dlv_dataset_options o = DLV_DATASET_OPTIONS_INIT;
    o.long_col = "long";
    o.limit = 2;
    assert_int_equal(dlv_dataset_read(p, &o, &ds), DLV_OK);
    assert_int_equal(ds.n, 2);
    char want[600];
    snprintf(want, sizeof want, "%s/img/a.jpg", tmpdir);
    assert_string_equal(ds.items[0].image, want);
    assert_string_equal(ds.items[0].caption, "a cat");
    assert_string_equal(ds.items[0].long_caption, "a long cat");
    assert_string_equal(ds.items[1].image, "/abs/b.jpg");
    assert_non_null(strstr(ds.items[1].where, "d.csv:3"));
    dlv_dataset_free(&ds);
    /* --images-style base folder */
    o.base_dir = "/root";
    o.limit = 0;
    assert_int_equal(dlv_dataset_read(p, &o, &ds), DLV_OK);
    assert_int_equal(ds.n, 3);
    assert_string_equal(ds.items[2].image, "/root/img/c.jpg");
    dlv_dataset_free(&ds);
    const char *q = write_file("nocol.csv", "path,title\na,b\n");
    expect_error(dlv_dataset_read(q, NULL, &ds), DLV_E_FORMAT, "no column 'filepath'");
    dlv_dataset_free(&ds);
}

/* ---- JSONL -------------------------------------------------------------- */

static void test_jsonl(void **state)
{
    (void)state;
    const char *p = write_file(
        "d.jsonl", "{\"image\": \"a.png\", \"caption\": \"short\", \"long_caption\": \"long\"}\n"
                   "\n"
                   "{\"image\": \"b.png\", \"long_caption\": \"only long\"}\r\n"
                   "{\"image\": \"c.png\", \"caption\": \"c\"}");
    dlv_dataset ds = DLV_DATASET_INIT;
    assert_int_equal(dlv_dataset_read(p, NULL, &ds), DLV_OK);
    assert_int_equal(ds.n, 3);
    assert_string_equal(ds.items[0].caption, "short");
    assert_string_equal(ds.items[0].long_caption, "long");
    assert_null(ds.items[1].caption);
    assert_null(ds.items[2].long_caption);
    assert_non_null(strstr(ds.items[1].where, "d.jsonl:3"));
    char want[600];
    snprintf(want, sizeof want, "%s/c.png", tmpdir);
    assert_string_equal(ds.items[2].image, want);
    dlv_dataset_free(&ds);

    const char *bad[][2] = {
        {"{\"caption\": \"x\"}\n", ":1: no \"image\""},
        {"{\"image\": \"a\", \"caption\": \"x\"}\n{\"image\": 3, \"caption\": \"x\"}\n",
         ":2: \"image\" is not a string"},
        {"{\"image\": \"a\"}\n", ":1: neither \"caption\" nor \"long_caption\""},
        {"[1]\n", ":1: not a JSON object"},
        {"{\"image\": \"a\", \"caption\": \"x\", \"caption\": \"y\"}\n", ":1:"},
        {"{\"image\": \"a\", \"caption\": \n", ":1: column"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *b = write_file("bad.jsonl", bad[i][0]);
        expect_error(dlv_dataset_read(b, NULL, &ds), DLV_E_FORMAT, bad[i][1]);
        dlv_dataset_free(&ds);
    }
    expect_error(dlv_dataset_read(path_in("missing.jsonl"), NULL, &ds), DLV_E_IO,
                 "missing.jsonl");
    dlv_dataset_free(&ds);
    expect_error(dlv_dataset_read("x.parquet", NULL, &ds), DLV_E_UNSUPPORTED, "x.parquet");
}

/* ---- Brace patterns ----------------------------------------------------- */

static void test_braces(void **state)
{
    (void)state;
    char **v = NULL;
    size_t n = 0;
    assert_int_equal(dlv_expand_braces("s/{00008..00011}.tar", 100, &v, &n), DLV_OK);
    assert_int_equal(n, 4);
    assert_string_equal(v[0], "s/00008.tar");
    assert_string_equal(v[3], "s/00011.tar");
    dlv_free_strings(v, n);
    assert_int_equal(dlv_expand_braces("{a,b}-{1..2}.tar", 100, &v, &n), DLV_OK);
    assert_int_equal(n, 4);
    assert_string_equal(v[0], "a-1.tar");
    assert_string_equal(v[1], "a-2.tar");
    assert_string_equal(v[2], "b-1.tar");
    dlv_free_strings(v, n);
    assert_int_equal(dlv_expand_braces("plain.tar", 100, &v, &n), DLV_OK);
    assert_int_equal(n, 1);
    dlv_free_strings(v, n);
    expect_error(dlv_expand_braces("{1..3", 100, &v, &n), DLV_E_INVALID_ARG, "unbalanced");
    expect_error(dlv_expand_braces("{3..1}", 100, &v, &n), DLV_E_INVALID_ARG, "bad range");
    expect_error(dlv_expand_braces("{0..999}", 100, &v, &n), DLV_E_INVALID_ARG, "more than 100");
}

/* ---- WebDataset --------------------------------------------------------- */

static void tar_add(struct archive *a, const char *name, const void *data, size_t n)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)n);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    assert_int_equal(archive_write_data(a, data, n), (la_ssize_t)n);
    archive_entry_free(e);
}

static void write_shard(const char *name, int first, int count, int broken)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_filename(a, path_in(name)), ARCHIVE_OK);
    for (int i = first; i < first + count; i++) {
        char key[64], img[32], cap[64];
        snprintf(img, sizeof img, "IMG%d", i);
        snprintf(key, sizeof key, "dir/%06d.jpg", i);
        if (!(broken && i == first + 1)) tar_add(a, key, img, strlen(img));
        if (i % 2 == 0) {
            snprintf(key, sizeof key, "dir/%06d.txt", i);
            snprintf(cap, sizeof cap, "caption %d\n", i);
            tar_add(a, key, cap, strlen(cap));
        } else {
            snprintf(key, sizeof key, "dir/%06d.json", i);
            snprintf(cap, sizeof cap, "{\"caption\": \"json %d\", \"long_caption\": \"L%d\"}", i, i);
            tar_add(a, key, cap, strlen(cap));
        }
        snprintf(key, sizeof key, "dir/%06d.cls", i); /* ignored */
        tar_add(a, key, "7", 1);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static void test_wds(void **state)
{
    (void)state;
    write_shard("shard-0.tar", 0, 3, 0);
    write_shard("shard-1.tar", 3, 2, 0);
    char pattern[600];
    snprintf(pattern, sizeof pattern, "%s/shard-{0..1}.tar", tmpdir);
    dlv_dataset ds = DLV_DATASET_INIT;
    assert_int_equal(dlv_dataset_read(pattern, NULL, &ds), DLV_OK);
    assert_int_equal(ds.n, 5);
    for (size_t i = 0; i < 5; i++) {
        char img[32];
        snprintf(img, sizeof img, "IMG%zu", i);
        assert_null(ds.items[i].image);
        assert_int_equal(ds.items[i].image_size, strlen(img));
        assert_memory_equal(ds.items[i].image_data, img, strlen(img));
        char cap[32];
        snprintf(cap, sizeof cap, i % 2 == 0 ? "caption %zu" : "json %zu", i);
        assert_string_equal(ds.items[i].caption, cap);
        if (i % 2) assert_non_null(ds.items[i].long_caption);
    }
    assert_non_null(strstr(ds.items[4].where, "shard-1.tar:dir/000004"));
    dlv_dataset_free(&ds);
    dlv_dataset_options o = DLV_DATASET_OPTIONS_INIT;
    o.limit = 4;
    assert_int_equal(dlv_dataset_read(pattern, &o, &ds), DLV_OK);
    assert_int_equal(ds.n, 4);
    dlv_dataset_free(&ds);
    /* A sample without its image names the shard and key. */
    write_shard("broken.tar", 0, 3, 1);
    expect_error(dlv_dataset_read(path_in("broken.tar"), NULL, &ds), DLV_E_FORMAT,
                 "broken.tar: sample 'dir/000001' has no image");
    dlv_dataset_free(&ds);
    /* A missing shard, and a file that is not a tar. */
    snprintf(pattern, sizeof pattern, "%s/shard-{0..2}.tar", tmpdir);
    expect_error(dlv_dataset_read(pattern, NULL, &ds), DLV_E_IO, "shard-2.tar");
    dlv_dataset_free(&ds);
    const char *junk = write_file("junk.tar", "this is not a tar file at all, not at all.");
    assert_int_not_equal(dlv_dataset_read(junk, NULL, &ds), DLV_OK);
    assert_non_null(strstr(dlv_last_error(), "junk.tar"));
    dlv_dataset_free(&ds);
}

/* ---- Evaluation formats ------------------------------------------------- */

static void test_karpathy(void **state)
{
    (void)state;
    const char *p = write_file(
        "k.json",
        "{\"images\": ["
        "{\"filepath\": \"val2014\", \"filename\": \"a.jpg\", \"split\": \"test\","
        " \"sentences\": [{\"raw\": \"A one.\"}, {\"raw\": \"A two.\"}]},"
        "{\"filepath\": \"val2014\", \"filename\": \"b.jpg\", \"split\": \"train\","
        " \"sentences\": [{\"raw\": \"B.\"}]},"
        "{\"filename\": \"c.jpg\", \"split\": \"test\","
        " \"sentences\": [{\"raw\": \"C one.\"}, {\"raw\": \"C two.\"}, {\"raw\": \"C three.\"}]}"
        "], \"dataset\": \"coco\"}");
    dlv_retrieval_set r;
    assert_int_equal(dlv_karpathy_read(p, "test", "/imgs", 0, &r), DLV_OK);
    assert_int_equal(r.images.n, 2);
    assert_string_equal(r.images.items[0].image, "/imgs/val2014/a.jpg");
    assert_string_equal(r.images.items[1].image, "/imgs/c.jpg");
    assert_int_equal(r.n_txt, 5);
    assert_string_equal(r.texts[2], "C one.");
    assert_int_equal(r.txt_img[1], 0);
    assert_int_equal(r.txt_img[4], 1);
    dlv_retrieval_set_free(&r);
    assert_int_equal(dlv_karpathy_read(p, "test", "/imgs", 1, &r), DLV_OK);
    assert_int_equal(r.images.n, 1);
    assert_int_equal(r.n_txt, 2);
    dlv_retrieval_set_free(&r);
    expect_error(dlv_karpathy_read(p, "val", NULL, 0, &r), DLV_E_FORMAT, "no images in split 'val'");
    const char *b = write_file("kb.json", "{\"images\": [{\"filename\": \"a.jpg\", \"split\": "
                                          "\"test\", \"sentences\": [{\"tokens\": []}]}]}");
    expect_error(dlv_karpathy_read(b, "test", NULL, 0, &r), DLV_E_FORMAT,
                 "images[0].sentences[0]: \"raw\" is missing");
}

static void test_retrieval_from_jsonl(void **state)
{
    (void)state;
    /* Samples with the same image become one image with several captions. */
    const char *p = write_file("r.jsonl", "{\"image\": \"a.png\", \"caption\": \"a1\"}\n"
                                          "{\"image\": \"b.png\", \"caption\": \"b1\"}\n"
                                          "{\"image\": \"a.png\", \"caption\": \"a2\"}\n"
                                          "{\"image\": \"c.png\", \"caption\": \"c1\"}\n");
    dlv_retrieval_set r;
    assert_int_equal(dlv_retrieval_from_dataset(p, "/x", 0, &r), DLV_OK);
    assert_int_equal(r.images.n, 3);
    assert_int_equal(r.n_txt, 4);
    assert_int_equal(r.txt_img[0], 0);
    assert_int_equal(r.txt_img[1], 1);
    assert_int_equal(r.txt_img[2], 0);
    assert_int_equal(r.txt_img[3], 2);
    assert_string_equal(r.images.items[2].image, "/x/c.png");
    dlv_retrieval_set_free(&r);
    assert_int_equal(dlv_retrieval_from_dataset(p, "/x", 2, &r), DLV_OK);
    assert_int_equal(r.images.n, 2);
    assert_int_equal(r.n_txt, 3);
    dlv_retrieval_set_free(&r);
}

static void test_sugarcrepe(void **state)
{
    (void)state;
    const char *p = write_file(
        "sc.json", "{\"0\": {\"filename\": \"1.jpg\", \"caption\": \"p0\", \"negative_caption\": "
                   "\"n0\"}, \"7\": {\"filename\": \"2.jpg\", \"caption\": \"p1\", "
                   "\"negative_caption\": \"n1\"}}");
    dlv_pair_set s;
    assert_int_equal(dlv_sugarcrepe_read(p, "/coco", 0, &s), DLV_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.items[1].id, "7");
    assert_string_equal(s.items[1].image, "/coco/2.jpg");
    assert_string_equal(s.items[1].neg, "n1");
    dlv_pair_set_free(&s);
    assert_int_equal(dlv_sugarcrepe_read(p, "/coco", 1, &s), DLV_OK);
    assert_int_equal(s.n, 1);
    dlv_pair_set_free(&s);
    const char *b = write_file("scb.json", "{\"0\": {\"filename\": \"1.jpg\", \"caption\": \"p\"}}");
    expect_error(dlv_sugarcrepe_read(b, NULL, 0, &s), DLV_E_FORMAT,
                 "\"0\": \"negative_caption\" is missing");
}

static void test_winoground_read(void **state)
{
    (void)state;
    const char *p = write_file(
        "w.jsonl", "{\"id\": 0, \"image_0\": \"ex_0_img_0\", \"image_1\": \"ex_0_img_1\", "
                   "\"caption_0\": \"c0\", \"caption_1\": \"c1\", \"tag\": \"x\"}\n"
                   "{\"id\": 1, \"image_0\": \"ex_1_img_0\", \"image_1\": \"ex_1_img_1\", "
                   "\"caption_0\": \"d0\", \"caption_1\": \"d1\"}\n");
    dlv_wino_set w;
    assert_int_equal(dlv_winoground_read(p, "/wg", 0, &w), DLV_OK);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.items[1].image[1], "/wg/ex_1_img_1.png");
    assert_string_equal(w.items[0].caption[1], "c1");
    assert_string_equal(w.items[1].id, "1");
    dlv_wino_set_free(&w);
    const char *b = write_file("wb.jsonl", "{\"id\": 0, \"image_0\": \"a\", \"image_1\": \"b\", "
                                           "\"caption_0\": \"c0\"}\n");
    expect_error(dlv_winoground_read(b, NULL, 0, &w), DLV_E_FORMAT,
                 "line 1: \"caption_1\" is missing");
}

static void test_classify_read(void **state)
{
    (void)state;
    const char *names = write_file("names.txt", "cat\r\ndog\n\nbird\n");
    char root[600];
    snprintf(root, sizeof root, "%s/cls", tmpdir);
    mkdir(root, 0777);
    const char *sub[3] = {"cat", "dog", "bird"};
    for (int c = 0; c < 3; c++) {
        char d[700];
        snprintf(d, sizeof d, "%s/%s", root, sub[c]);
        mkdir(d, 0777);
        for (int k = 0; k < 2; k++) {
            char f[800];
            snprintf(f, sizeof f, "%s/%d.%s", d, 1 - k, k ? "png" : "JPG");
            FILE *fp = fopen(f, "wb");
            assert_non_null(fp);
            fclose(fp);
        }
        char f[800];
        snprintf(f, sizeof f, "%s/notes.txt", d); /* ignored */
        fclose(fopen(f, "wb"));
    }
    dlv_class_set cs;
    assert_int_equal(dlv_class_set_read(root, names, NULL, 0, &cs), DLV_OK);
    assert_int_equal(cs.n_cls, 3);
    assert_string_equal(cs.names[2], "bird");
    assert_int_equal(cs.n, 6);
    assert_int_equal(cs.label[0], 0);
    assert_int_equal(cs.label[5], 2);
    assert_non_null(strstr(cs.images[0], "/cat/0.png")); /* sorted by name */
    assert_non_null(strstr(cs.images[1], "/cat/1.JPG"));
    dlv_class_set_free(&cs);
    /* --limit 3 of 6: indices 0, 2, 4: one per class. */
    assert_int_equal(dlv_class_set_read(root, names, NULL, 3, &cs), DLV_OK);
    assert_int_equal(cs.n, 3);
    assert_int_equal(cs.label[0], 0);
    assert_int_equal(cs.label[1], 1);
    assert_int_equal(cs.label[2], 2);
    dlv_class_set_free(&cs);

    const char *csv = write_file("cls.csv", "filepath,label\nx.png,dog\ny.png,2\n");
    assert_int_equal(dlv_class_set_read(csv, names, "/r", 0, &cs), DLV_OK);
    assert_int_equal(cs.n, 2);
    assert_int_equal(cs.label[0], 1);
    assert_int_equal(cs.label[1], 2);
    assert_string_equal(cs.images[0], "/r/x.png");
    dlv_class_set_free(&cs);
    const char *bad = write_file("clsb.csv", "filepath,label\nx.png,fish\n");
    expect_error(dlv_class_set_read(bad, names, NULL, 0, &cs), DLV_E_FORMAT,
                 "clsb.csv:2: label 'fish'");
    const char *dup = write_file("dup.txt", "a\nb\na\n");
    expect_error(dlv_class_set_read(csv, dup, NULL, 0, &cs), DLV_E_FORMAT, "listed twice");
    const char *more = write_file("more.txt", "cat\ndog\nbird\nfish\n");
    expect_error(dlv_class_set_read(root, more, NULL, 0, &cs), DLV_E_IO, "'fish'");

    char **t = NULL;
    size_t n = 0;
    const char *tp = write_file("t.txt", "a photo of a {}.\n{c} in the wild\n");
    assert_int_equal(dlv_read_templates(tp, &t, &n), DLV_OK);
    assert_int_equal(n, 2);
    char *f = dlv_fill_template(t[0], "dog");
    assert_string_equal(f, "a photo of a dog.");
    free(f);
    f = dlv_fill_template("{} and {c}", "cat");
    assert_string_equal(f, "cat and cat");
    free(f);
    dlv_free_strings(t, n);
    const char *tb = write_file("tb.txt", "a photo\n");
    expect_error(dlv_read_templates(tb, &t, &n), DLV_E_FORMAT, "template 1");
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dlv-data-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_rfc4180),    cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_csv_dataset),    cmocka_unit_test(test_jsonl),
        cmocka_unit_test(test_braces),         cmocka_unit_test(test_wds),
        cmocka_unit_test(test_karpathy),       cmocka_unit_test(test_retrieval_from_jsonl),
        cmocka_unit_test(test_sugarcrepe),     cmocka_unit_test(test_winoground_read),
        cmocka_unit_test(test_classify_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
