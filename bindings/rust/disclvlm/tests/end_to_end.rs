//! End to end on a tiny generated checkpoint (CLIP + Llama with a tokenizer):
//! embeddings equal, bit for bit, what the C library gives through the
//! `disclvlm` CLI; errors cross the boundary with the library's status and
//! message; handles work across threads.
//!
//! Environment (all optional; tests/rust/run_rust_tests.sh sets them):
//! - DISCLVLM_GEN_TINY: tests/gen_tiny_checkpoint.py (default: from the source tree)
//! - DISCLVLM_TEST_IMAGES: tests/image/data (default: from the source tree)
//! - DISCLVLM_CLI: the `disclvlm` executable, the C reference (default:
//!   DISCLVLM_LIB_DIR/../disclvlm/disclvlm, the meson build tree's layout)
//! - DISCLVLM_REQUIRE_CLI=1: fail, rather than skip the comparisons, without it
//! - PYTHON: the Python 3 that runs the generator (default python3)

use disclvlm::{
    Batch, Image, Matrix, Model, ModelOptions, PreprocessOptions, Session, SessionOptions, Status,
    Tokenizer, TrainOptions,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

const THREADS: i32 = 2;

fn source_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("disclvlm-e2e")
}

fn model_dir() -> PathBuf {
    work_dir().join("model")
}

fn bare_model_dir() -> PathBuf {
    work_dir().join("model-no-tokenizer")
}

fn image_path(name: &str) -> PathBuf {
    std::env::var_os("DISCLVLM_TEST_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| source_root().join("tests/image/data"))
        .join(name)
}

fn images() -> Vec<PathBuf> {
    ["png_rgb8.png", "jpeg_progressive.jpg", "png_gray16.png"]
        .iter()
        .map(|n| image_path(n))
        .collect()
}

const TEXTS: [&str; 5] = ["a photo of a cat", "", "a dog", "xxx", "ünïcödé text"];

fn generate(out: &Path, with_tokenizer: bool) {
    let gen = std::env::var_os("DISCLVLM_GEN_TINY")
        .map(PathBuf::from)
        .unwrap_or_else(|| source_root().join("tests/gen_tiny_checkpoint.py"));
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let mut cmd = Command::new(&python);
    // A sanitizer run preloads libasan into the test: not into Python.
    cmd.env_remove("LD_PRELOAD");
    cmd.arg(&gen).arg(out).args(["--vision", "clip", "--text", "llama", "--dtype", "f32"]);
    if with_tokenizer {
        cmd.arg("--with-tokenizer");
    }
    let o =
        cmd.output().unwrap_or_else(|e| panic!("cannot run {} {}: {}", python, gen.display(), e));
    assert!(
        o.status.success(),
        "{} failed: {}{}",
        gen.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Generates the checkpoints once per test process.
fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = std::fs::remove_dir_all(work_dir());
        std::fs::create_dir_all(work_dir()).unwrap();
        generate(&model_dir(), true);
        generate(&bare_model_dir(), false);
    });
}

fn session(model: &Model) -> Session<'_> {
    let mut o = SessionOptions::new().unwrap();
    o.set_threads(THREADS).unwrap();
    Session::new(model, Some(&o)).unwrap()
}

fn load() -> Model {
    setup();
    Model::load(model_dir()).unwrap()
}

/// The C reference CLI, or None (after saying so) when the comparisons are skipped.
fn cli() -> Option<PathBuf> {
    let p = std::env::var_os("DISCLVLM_CLI").map(PathBuf::from).or_else(|| {
        std::env::var_os("DISCLVLM_LIB_DIR").map(|d| PathBuf::from(d).join("../disclvlm/disclvlm"))
    });
    match p {
        Some(p) if p.is_file() => Some(p),
        _ => {
            assert!(
                std::env::var("DISCLVLM_REQUIRE_CLI").map(|v| v != "1").unwrap_or(true),
                "DISCLVLM_REQUIRE_CLI=1 but no disclvlm CLI (set DISCLVLM_CLI)"
            );
            eprintln!("no disclvlm CLI (set DISCLVLM_CLI): comparison with C skipped");
            None
        }
    }
}

fn run_cli(cli: &Path, args: &[&std::ffi::OsStr]) -> String {
    let o = Command::new(cli).args(args).output().unwrap();
    assert!(o.status.success(), "disclvlm {:?}: {}", args, String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// (shape, values) of a little-endian float32 .npy file.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let blob = std::fs::read(path).unwrap();
    assert_eq!(&blob[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([blob[8], blob[9]]) as usize;
    let header = std::str::from_utf8(&blob[10..10 + hlen]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{}", header);
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let body = &blob[10 + hlen..];
    let vals: Vec<f32> =
        body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(vals.len(), shape.iter().product::<usize>());
    (shape, vals)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn assert_bitwise(what: &str, rust: &[f32], c: &[f32]) {
    assert_eq!(rust.len(), c.len(), "{}: lengths", what);
    let differ: Vec<usize> =
        (0..c.len()).filter(|&i| rust[i].to_bits() != c[i].to_bits()).collect();
    if let Some(&i) = differ.first() {
        panic!(
            "{}: {} of {} values differ from C, the first at [{}]: {:e} (Rust) vs {:e} (C)",
            what,
            differ.len(),
            c.len(),
            i,
            rust[i],
            c[i]
        );
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A w x h RGB image, deterministic.
fn pixels(w: u32, h: u32) -> Vec<u8> {
    (0..w * h * 3).map(|i| ((i * 37 + i / 7) % 251) as u8).collect()
}

// ---- A PNG writer with std only: stored (uncompressed) deflate blocks ------

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn png_rgb8(rgb: &[u8], w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut raw = Vec::new();
    for row in rgb.chunks(3 * w as usize) {
        raw.push(0u8); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push((i + 1 == blocks.len()) as u8); // BFINAL, BTYPE 00
        z.extend_from_slice(&(b.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (mut a, mut s) = (1u32, 0u32);
    for &b in &raw {
        a = (a + b as u32) % 65521;
        s = (s + a) % 65521;
    }
    z.extend_from_slice(&((s << 16) | a).to_be_bytes());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", &[]);
    png
}

// ---- Results equal the C library's ------------------------------------------

#[test]
fn images_match_c_bitwise() {
    let model = load();
    let mut s = session(&model);
    let paths = images();
    let imgs: Vec<Image> = paths.iter().map(|p| Image::from_file(p).unwrap()).collect();
    let refs: Vec<&Image> = imgs.iter().collect();
    let e = s.encode_images(&refs).unwrap();
    let d = model.embed_dim();
    assert_eq!((e.rows(), e.cols()), (3, d));
    for r in e.iter_rows() {
        assert!((dot(r, r) - 1.0).abs() < 1e-5, "not a unit vector");
    }
    assert!(bits(e.row(0)) != bits(e.row(1)), "different images, same embedding");
    // The single-image conveniences agree with the batch call.
    let one = s.encode_image_file(&paths[0]).unwrap();
    let bytes = std::fs::read(&paths[1]).unwrap();
    let mem = s.encode_image_memory(&bytes).unwrap();
    for (i, v) in [(0, &one), (1, &mem)] {
        assert!(e.row(i).iter().zip(v.iter()).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    let cli = match cli() {
        Some(c) => c,
        None => return,
    };
    let out = work_dir().join("images.npy");
    let t = THREADS.to_string();
    let md = model_dir();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "encode-image".as_ref(),
        "--model".as_ref(),
        md.as_os_str(),
        "--threads".as_ref(),
        t.as_ref(),
    ];
    for p in &paths {
        args.push(p.as_os_str());
    }
    args.push("--out".as_ref());
    args.push(out.as_os_str());
    run_cli(&cli, &args);
    let (shape, c) = read_npy(&out);
    assert_eq!(shape, vec![3, d]);
    assert_bitwise("encode_images (3 files)", e.as_slice(), &c);
}

#[test]
fn texts_match_c_bitwise() {
    let model = load();
    let mut s = session(&model);
    let e = s.encode_texts(&TEXTS).unwrap();
    assert_eq!((e.rows(), e.cols()), (TEXTS.len(), model.embed_dim()));
    let owned: Vec<String> = TEXTS.iter().map(|t| t.to_string()).collect();
    assert_eq!(s.encode_texts(&owned).unwrap(), e, "String and &str inputs differ");

    let cli = match cli() {
        Some(c) => c,
        None => return,
    };
    let out = work_dir().join("texts.npy");
    let t = THREADS.to_string();
    let md = model_dir();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "encode-text".as_ref(),
        "--model".as_ref(),
        md.as_os_str(),
        "--threads".as_ref(),
        t.as_ref(),
    ];
    for x in TEXTS.iter() {
        args.push(x.as_ref());
    }
    args.push("--out".as_ref());
    args.push(out.as_os_str());
    run_cli(&cli, &args);
    let (shape, c) = read_npy(&out);
    assert_eq!(shape, vec![TEXTS.len(), model.embed_dim()]);
    assert_bitwise("encode_texts", e.as_slice(), &c);
}

#[test]
fn rgb_memory_png_and_embed_tokens_match_c_bitwise() {
    let model = load();
    let mut s = session(&model);
    let (w, h) = (23u32, 17u32);
    let rgb = pixels(w, h);
    // Raw pixels, the same with a padded stride, and a PNG of them (std only,
    // stored deflate) decoded by the library all give one embedding.
    let e_rgb = s.encode_image_rgb(&rgb, w, h, 3 * w as usize).unwrap();
    let stride = 3 * w as usize + 5;
    let mut padded = vec![0xabu8; stride * h as usize];
    for y in 0..h as usize {
        padded[y * stride..y * stride + 3 * w as usize]
            .copy_from_slice(&rgb[y * 3 * w as usize..(y + 1) * 3 * w as usize]);
    }
    let img = Image::from_rgb(&padded, w, h, stride).unwrap();
    let e_img = s.encode_images(&[&img]).unwrap();
    assert_bitwise("rgb with a stride vs packed", e_img.as_slice(), &e_rgb);
    let png = png_rgb8(&rgb, w, h);
    let e_png = s.encode_image_memory(&png).unwrap();
    assert_bitwise("PNG in memory vs rgb", &e_png, &e_rgb);

    // Token ids with the image token, normalised and raw.
    let tok = model.tokenizer().unwrap();
    let mut ids = tok.tokenize("a photo of", true).unwrap();
    let image_token: i32 = {
        let cfg = std::fs::read_to_string(model_dir().join("config.json")).unwrap();
        let rest = cfg.split("\"image_token_index\":").nth(1).unwrap();
        rest.trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    ids.insert(1, image_token);
    let e_tok = s.embed_tokens(&ids, Some(&img), false).unwrap();
    let e_hid = s.embed_tokens(&ids, Some(&img), true).unwrap();
    let n = dot(&e_hid, &e_hid).sqrt();
    assert!(
        e_hid.iter().zip(&e_tok).all(|(h, t)| (h / n - t).abs() < 1e-5),
        "hidden / |hidden| != normalised"
    );

    let cli = match cli() {
        Some(c) => c,
        None => return,
    };
    let png_path = work_dir().join("rust-written.png");
    std::fs::write(&png_path, &png).unwrap();
    let out = work_dir().join("rgb.npy");
    let t = THREADS.to_string();
    let md = model_dir();
    run_cli(
        &cli,
        &[
            "encode-image".as_ref(),
            "--model".as_ref(),
            md.as_os_str(),
            "--threads".as_ref(),
            t.as_ref(),
            png_path.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    assert_bitwise("PNG file through the CLI vs rgb through Rust", &e_rgb, &read_npy(&out).1);

    let id_list = ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    for (hidden, mine) in [(false, &e_tok), (true, &e_hid)] {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "embed".as_ref(),
            "--model".as_ref(),
            md.as_os_str(),
            "--threads".as_ref(),
            t.as_ref(),
            "--tokens".as_ref(),
            id_list.as_ref(),
            "--image".as_ref(),
            png_path.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ];
        if hidden {
            args.push("--hidden".as_ref());
        }
        run_cli(&cli, &args);
        assert_bitwise(
            if hidden { "embed_tokens hidden" } else { "embed_tokens" },
            mine,
            &read_npy(&out).1,
        );
    }
}

#[test]
fn tokenizer_matches_c() {
    let model = load();
    let tok = model.tokenizer().unwrap();
    let own = Tokenizer::load(model_dir()).unwrap();
    assert_eq!(tok.vocab_size().unwrap(), own.vocab_size().unwrap());
    for t in TEXTS.iter() {
        let ids = tok.tokenize(t, false).unwrap();
        assert_eq!(own.tokenize(t, false).unwrap(), ids);
        if t.is_ascii() {
            // (The tiny vocabulary has no bytes for the other characters.)
            assert_eq!(tok.detokenize(&ids, false).unwrap(), *t, "round trip of {:?}", t);
        }
        let mut buf = vec![0i32; ids.len()];
        assert_eq!(tok.tokenize_into(t, false, &mut buf).unwrap(), ids.len());
        assert_eq!(buf, ids);
    }
    if let Some(cli) = cli() {
        let md = model_dir();
        for t in TEXTS.iter().filter(|t| !t.is_empty()) {
            for special in [false, true] {
                let mut args: Vec<&std::ffi::OsStr> =
                    vec!["tokenize".as_ref(), "--tokenizer".as_ref(), md.as_os_str()];
                if special {
                    args.push("--add-special".as_ref());
                }
                args.push(t.as_ref());
                let c: Vec<i32> =
                    run_cli(&cli, &args).split_whitespace().map(|x| x.parse().unwrap()).collect();
                assert_eq!(
                    tok.tokenize(t, special).unwrap(),
                    c,
                    "ids of {:?} (special {})",
                    t,
                    special
                );
            }
        }
    }
}

#[test]
fn scores_and_model_queries() {
    let model = load();
    let mut s = session(&model);
    let im = s
        .encode_images(&[
            &Image::from_file(&images()[0]).unwrap(),
            &Image::from_file(&images()[1]).unwrap(),
        ])
        .unwrap();
    let tx = s.encode_texts(&TEXTS).unwrap();
    let sc = s.score(&im, &tx).unwrap();
    assert_eq!((sc.rows(), sc.cols()), (2, TEXTS.len()));
    for i in 0..2 {
        for j in 0..TEXTS.len() {
            assert!((sc.row(i)[j] - dot(im.row(i), tx.row(j))).abs() < 1e-5);
        }
    }
    assert!((s.logit_scale().unwrap() - 1.0 / 0.07).abs() < 1e-3);
    let desc = model.describe().unwrap();
    assert!(
        desc.starts_with('{')
            && desc.ends_with('}')
            && desc.contains(&model.embed_dim().to_string()),
        "{}",
        desc
    );
    let (c, h, w) = model.image_size().unwrap();
    assert_eq!(c, 3);
    let mut po = PreprocessOptions::new().unwrap();
    po.set_pad_square(true).unwrap();
    po.set_exif_rotate(false).unwrap();
    po.set_max_pixels(1 << 20).unwrap();
    let img = Image::from_file(&images()[0]).unwrap();
    assert_eq!(model.preprocess_image(&img, Some(&po)).unwrap().len(), c * h * w);
    assert!(!disclvlm::version().is_empty() && disclvlm::build_features().contains("cpu"));
    let (a, b, p) = disclvlm::version_numbers();
    assert_eq!(format!("{}.{}.{}", a, b, p), disclvlm::version());
}

#[test]
fn adapters_round_trip() {
    let model = load();
    let mut s = session(&model);
    let before = s.encode_texts(&["a cat"]).unwrap();
    let dir = work_dir().join("adapter");
    let _ = std::fs::remove_dir_all(&dir);
    s.adapter_save(&dir).unwrap();
    s.adapter_load(&dir).unwrap();
    assert_eq!(s.encode_texts(&["a cat"]).unwrap(), before);
    s.adapter_clear().unwrap();
    assert_eq!(s.encode_texts(&["a cat"]).unwrap(), before);
    let e = s.adapter_load(work_dir().join("no-such-adapter")).unwrap_err();
    assert!(e.message().contains("no-such-adapter"), "{:?}", e);
}

// ---- Errors cross the boundary with the library's message ---------------------

#[test]
fn bad_path_is_an_error_naming_it() {
    let e = Model::load("/nonexistent/disclvlm-model").unwrap_err();
    assert_eq!(e.status(), Status::Io, "{:?}", e);
    assert!(e.message().contains("/nonexistent/disclvlm-model"), "{:?}", e);
    assert_eq!(e.to_string(), e.message());

    let model = load();
    let mut s = session(&model);
    let missing = work_dir().join("missing.png");
    let e = Image::from_file(&missing).and_then(|im| s.encode_images(&[&im])).unwrap_err();
    assert!(e.message().contains("missing.png"), "{:?}", e);
    let e = s.encode_image_file(&missing).unwrap_err();
    assert!(e.message().contains("missing.png"), "{:?}", e);
    let e = Tokenizer::load("/nonexistent/tok.json").unwrap_err();
    assert!(e.message().contains("/nonexistent/tok.json"), "{:?}", e);
}

#[test]
fn corrupt_model_is_an_error_naming_the_file() {
    setup();
    let dir = work_dir().join("corrupt");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(model_dir()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    let st = dir.join("model.safetensors");
    let mut blob = std::fs::read(&st).unwrap();
    // Truncated: the header's offsets point past the end.
    std::fs::write(&st, &blob[..blob.len() / 2]).unwrap();
    let e = Model::load(&dir).unwrap_err();
    assert_eq!(e.status(), Status::Format, "{:?}", e);
    assert!(e.message().contains("model.safetensors"), "{:?}", e);
    // A garbage JSON header.
    for b in blob.iter_mut().skip(8).take(16) {
        *b = b'#';
    }
    std::fs::write(&st, &blob).unwrap();
    let e = Model::load(&dir).unwrap_err();
    assert_eq!(e.status(), Status::Format, "{:?}", e);
    assert!(e.message().contains("model.safetensors"), "{:?}", e);
    // A malformed image in memory.
    let model = load();
    let mut s = session(&model);
    let e = s.encode_image_memory(b"\x89PNG\r\n\x1a\nnot really").unwrap_err();
    assert!(!e.message().is_empty(), "{:?}", e);
}

#[test]
fn wrong_buffer_sizes_are_errors() {
    let model = load();
    let mut s = session(&model);
    let d = model.embed_dim();
    let small = |e: disclvlm::Error| {
        assert_eq!(e.status(), Status::BufferTooSmall, "{:?}", e);
        assert!(!e.message().is_empty());
        e
    };
    let mut out = vec![0f32; 2 * d - 1];
    let e = small(s.encode_texts_into(&["a", "b"], &mut out).unwrap_err());
    assert!(e.message().contains("dlv_encode_text"), "{:?}", e);
    let img = Image::from_file(&images()[0]).unwrap();
    small(s.encode_images_into(&[&img, &img], &mut out).unwrap_err());
    small(s.encode_image_file_into(&images()[0], &mut out[..d - 1]).unwrap_err());
    small(s.embed_tokens_into(&[1, 2, 3], None, false, &mut out[..d - 1]).unwrap_err());
    let x = vec![0.5f32; 2 * d];
    let e = s.score_into(&x, &x, d, &mut [0f32; 3]).unwrap_err();
    assert!(matches!(e.status(), Status::BufferTooSmall | Status::InvalidArg), "{:?}", e);
    let tok = model.tokenizer().unwrap();
    small(tok.tokenize_into("a photo of a cat", false, &mut [0i32; 1]).unwrap_err());
    let (c, h, w) = model.image_size().unwrap();
    let e = model.preprocess_image_into(&img, None, &mut vec![0f32; c * h * w - 1]).unwrap_err();
    assert!(matches!(e.status(), Status::BufferTooSmall | Status::InvalidArg), "{:?}", e);
    // Sizes the Rust side checks before calling: no out-of-bounds read.
    let e = s.encode_image_rgb(&[0u8; 10], 2, 2, 6).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArg);
    let e = s.score_into(&x[..d + 1], &x, d, &mut [0f32; 4]).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArg);
    let a = Matrix::new(1, d, vec![0.1; d]).unwrap();
    let b = Matrix::new(1, 2, vec![0.1; 2]).unwrap();
    assert_eq!(s.score(&a, &b).unwrap_err().status(), Status::InvalidArg);
    // And the library checks the rest.
    let e = s.encode_image_rgb(&[0u8; 12], 2, 2, 5).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArg);
    assert!(e.message().contains("stride"), "{:?}", e);
    let e = Image::from_rgb(&[], 0, 0, 0).unwrap_err();
    assert!(e.message().contains("empty image"), "{:?}", e);
}

#[test]
fn other_library_errors() {
    let model = load();
    let mut s = session(&model);
    // A NUL inside a string stops on the Rust side.
    let e = s.encode_texts(&["a\0b"]).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArg);
    assert!(e.message().contains("NUL"), "{:?}", e);
    // Invalid UTF-8 given to the tokenizer: the library names the offset.
    let tok = model.tokenizer().unwrap();
    let e = tok.tokenize(&b"ab\xffc"[..], false).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArg);
    assert!(e.message().contains('2'), "{:?}", e);
    let e = tok.detokenize(&[1 << 30], false).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArg);
    // An image token without an image.
    let image_token = 120;
    let e = s.embed_tokens(&[1, image_token, 2], None, false).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArg, "{:?}", e);
    // A bad option value.
    let mut o = SessionOptions::new().unwrap();
    assert_eq!(o.set_threads(-1).unwrap_err().status(), Status::InvalidArg);
    let mut mo = disclvlm::ModelOptions::new().unwrap();
    let e = mo.set_backend("no-such-backend").unwrap_err();
    assert_eq!(e.status(), Status::InvalidArg, "{:?}", e);
    assert!(e.message().contains("no-such-backend"), "{:?}", e);
    assert_eq!(mo.set_device(-1).unwrap_err().status(), Status::InvalidArg);
    if !disclvlm::build_features().split(',').any(|f| f == "cuda") {
        mo.set_backend("cuda").unwrap();
        let e = Model::load_with(model_dir(), &mo).unwrap_err();
        assert_eq!(e.status(), Status::Backend, "{:?}", e);
        assert!(!e.message().is_empty());
    }
    mo.set_backend("cpu").unwrap();
    mo.set_device(0).unwrap();
    assert_eq!(Model::load_with(model_dir(), &mo).unwrap().embed_dim(), model.embed_dim());
    // A model without a tokenizer.
    let bare = Model::load(bare_model_dir()).unwrap();
    let e = bare.tokenizer().err().unwrap();
    assert_eq!(e.status(), Status::Unsupported, "{:?}", e);
    assert!(e.message().contains("has no tokenizer"), "{:?}", e);
    // Training needs the prompts, hence a tokenizer.
    let img = Image::from_file(&images()[0]).unwrap();
    let mut batch = Batch::new().unwrap();
    batch.add(&img, "a photo", Some("a long caption")).unwrap();
    batch.add(&img, "another", None).unwrap();
    let mut bs = session(&bare);
    let e = bs.train_step(&batch).unwrap_err();
    assert_eq!(e.status(), Status::Unsupported, "{:?}", e);
    assert!(e.message().contains("no tokenizer"), "{:?}", e);
    assert!(e.message().contains("prompts.json"), "{:?}", e);
    let empty = Batch::new().unwrap();
    assert_eq!(s.train_step(&empty).unwrap_err().status(), Status::InvalidArg);
}

// ---- Training ---------------------------------------------------------------------

fn train_options() -> TrainOptions {
    let mut o = TrainOptions::new().unwrap();
    o.set("lr", "1e-2")
        .unwrap()
        .set("seed", "7")
        .unwrap()
        .set("lora_rank", "4")
        .unwrap()
        .set("train", "soft,lora,logit_scale")
        .unwrap();
    o
}

#[test]
fn training_steps_checkpoints_and_options() {
    let model = load();
    let paths = images();
    let imgs: Vec<Image> = paths.iter().map(|p| Image::from_file(p).unwrap()).collect();
    let mut batch = Batch::new().unwrap();
    batch.add(&imgs[0], "a photo of a cat", Some("a long caption about a cat")).unwrap();
    batch.add(&imgs[1], "a dog", None).unwrap();
    batch.add(&imgs[2], "a gray square", Some("a longer caption")).unwrap();

    let mut s = session(&model);
    let untrained = s.encode_texts(&TEXTS).unwrap();
    s.train_begin(&train_options()).unwrap();
    for want_step in 1..=2u64 {
        let st = s.train_step(&batch).unwrap();
        assert_eq!(st.step, want_step, "{:?}", st);
        for v in [st.loss, st.loss_contrastive, st.loss_ntp, st.grad_norm, st.logit_scale] {
            assert!(v.is_finite(), "{:?}", st);
        }
        assert!(st.loss > 0.0 && st.tokens > 0, "{:?}", st);
        assert!((st.learning_rate - 1e-2).abs() < 1e-9, "{:?}", st);
    }
    let ckpt = work_dir().join("train-checkpoint");
    let _ = std::fs::remove_dir_all(&ckpt);
    s.checkpoint_save(&ckpt).unwrap();
    let want = s.train_step(&batch).unwrap();
    let want_txt = s.encode_texts(&TEXTS).unwrap();
    assert_ne!(bits(want_txt.as_slice()), bits(untrained.as_slice()), "training changed nothing");

    // A fresh session resumes from the checkpoint bit for bit.
    let mut r = session(&model);
    r.checkpoint_load(&ckpt).unwrap();
    let got = r.train_step(&batch).unwrap();
    assert_eq!(got.step, 3);
    assert_eq!(
        [got.loss, got.loss_contrastive, got.loss_ntp, got.grad_norm, got.logit_scale]
            .map(f64::to_bits),
        [want.loss, want.loss_contrastive, want.loss_ntp, want.grad_norm, want.logit_scale]
            .map(f64::to_bits)
    );
    assert_eq!(got, want);
    assert_eq!(bits(r.encode_texts(&TEXTS).unwrap().as_slice()), bits(want_txt.as_slice()));

    // The trained adapter saves and loads into another session.
    let dir = work_dir().join("trained-adapter");
    let _ = std::fs::remove_dir_all(&dir);
    s.adapter_save(&dir).unwrap();
    let mut f = session(&model);
    f.adapter_load(&dir).unwrap();
    assert_eq!(bits(f.encode_texts(&TEXTS).unwrap().as_slice()), bits(want_txt.as_slice()));

    // The model itself (only soft prompts, LoRA and the scale trained: the
    // base weights) saves as a checkpoint that loads and encodes as before.
    let saved = work_dir().join("trained-model");
    let _ = std::fs::remove_dir_all(&saved);
    s.train_save_model(&saved, Some("f32")).unwrap();
    let saved = Model::load(&saved).unwrap();
    assert_eq!(
        bits(session(&saved).encode_texts(&TEXTS).unwrap().as_slice()),
        bits(untrained.as_slice())
    );

    let e = r.checkpoint_load(work_dir().join("no-such-checkpoint")).unwrap_err();
    assert!(e.message().contains("no-such-checkpoint"), "{:?}", e);

    // Option errors carry the library's message.
    let mut o = TrainOptions::new().unwrap();
    let e = o.set("no_such_option", "1").unwrap_err();
    assert_eq!(e.status(), Status::InvalidArg, "{:?}", e);
    assert!(e.message().contains("no_such_option"), "{:?}", e);
    let e = o.set("lr", "fast").unwrap_err();
    assert_eq!(e.status(), Status::InvalidArg, "{:?}", e);
    assert!(e.message().contains("lr"), "{:?}", e);
    assert_eq!(o.set("lr", "a\0b").unwrap_err().status(), Status::InvalidArg);
    o.set("schedule", "cosine").unwrap().set("warmup", "10").unwrap();
    let e = s.train_begin(&o).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArg, "{:?}", e);
    assert!(e.message().contains("total_steps"), "{:?}", e);
}

// ---- Threads ------------------------------------------------------------------

#[test]
fn cancel_from_another_thread() {
    let model = load();
    let mut s = session(&model);
    let want = s.encode_texts(&["a cat"]).unwrap();
    s.cancel().unwrap();
    let e = s.encode_texts(&["a cat"]).unwrap_err();
    assert_eq!(e.status(), Status::Cancelled);
    assert!(e.message().contains("dlv_session_cancel"), "{:?}", e);
    assert_eq!(s.encode_texts(&["a cat"]).unwrap(), want, "the request is consumed");

    let h = s.cancel_handle();
    std::thread::scope(|sc| {
        sc.spawn(|| h.cancel().unwrap()).join().unwrap();
    });
    assert_eq!(s.encode_texts(&["a cat"]).unwrap_err().status(), Status::Cancelled);
    // The handle keeps the C session alive after the Session is dropped.
    drop(s);
    h.cancel().unwrap();
    drop(h);
}

#[test]
fn one_model_many_threads() {
    let model = load();
    let img = Image::from_file(&images()[1]).unwrap();
    let want_img = session(&model).encode_images(&[&img]).unwrap();
    let want_txt = session(&model).encode_texts(&TEXTS).unwrap();
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                sc.spawn(|| {
                    let mut s = session(&model);
                    for _ in 0..2 {
                        assert_eq!(
                            bits(s.encode_images(&[&img]).unwrap().as_slice()),
                            bits(want_img.as_slice())
                        );
                        assert_eq!(
                            bits(s.encode_texts(&TEXTS).unwrap().as_slice()),
                            bits(want_txt.as_slice())
                        );
                    }
                    // Errors are per thread: this thread's message.
                    let e = s.encode_texts_into(&["a"], &mut []).unwrap_err();
                    assert_eq!(e.status(), Status::BufferTooSmall);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    // A session moves to another thread (Send).
    let mut s = session(&model);
    let got =
        std::thread::scope(|sc| sc.spawn(move || s.encode_texts(&TEXTS).unwrap()).join().unwrap());
    assert_eq!(got, want_txt);
}

#[test]
fn long_texts_refused_or_truncated_and_outputs_checked() {
    let model = load();
    let mut s = session(&model);
    let huge = vec!["word"; 300].join(" ");
    let (n, limit) = s.text_positions(&huge, false).unwrap();
    assert!(limit == 256 && n > limit, "{} positions, limit {}", n, limit);
    assert!(s.text_positions(&huge, true).unwrap().0 > n);
    let err = s.encode_texts(&["sky", huge.as_str()]).unwrap_err();
    assert!(err.message().contains("texts[1]") && err.message().contains("(256)"), "{}", err);

    let mut o = SessionOptions::new().unwrap();
    o.set_truncate(true).unwrap();
    let err = o.set_compute("f8").unwrap_err();
    assert!(err.message().contains("'f8'"), "{}", err);
    o.set_compute("bf16").unwrap();
    o.set_compute("f32").unwrap();
    let mut t = Session::new(&model, Some(&o)).unwrap();
    let longer = format!("{} and more", huge);
    let e = t.encode_texts(&[huge.as_str(), longer.as_str()]).unwrap();
    let d = e.row(0).iter().zip(e.row(1)).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(d < 1e-5, "truncated texts differ by {}", d);

    // Outputs checked before training: a foreign file is named.
    s.train_begin(&train_options()).unwrap();
    let dir = work_dir().join("foreign-out");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let err = s.train_check_outputs(Some(&dir), None, None).unwrap_err();
    assert!(err.message().contains("notes.txt"), "{}", err);
    s.train_check_outputs(Some(&work_dir().join("fresh-out")), None, None).unwrap();
}

/// Encodes two texts with sessions `s` (f32) and `b` (a lower precision):
/// each pair of embeddings within cosine 0.999, and not bit-equal.
fn assert_close_not_equal(s: &mut Session, b: &mut Session, what: &str) {
    let texts = ["a red square", "two blue circles"];
    let e = s.encode_texts(&texts).unwrap();
    let f = b.encode_texts(&texts).unwrap();
    for i in 0..texts.len() {
        let (x, y) = (e.row(i), f.row(i));
        let dot: f32 = x.iter().zip(y).map(|(a, b)| a * b).sum();
        let nx: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        let ny: f32 = y.iter().map(|a| a * a).sum::<f32>().sqrt();
        let cos = dot / (nx * ny);
        assert!(cos > 0.999 && cos <= 1.0001, "{}, text {}: cosine {}", what, i, cos);
        assert!(x != y, "{} gave the f32 embedding bit for bit", what);
    }
}

#[test]
fn bf16_compute_is_close_to_f32() {
    let model = load();
    let mut s = session(&model);
    let mut o = SessionOptions::new().unwrap();
    o.set_compute("bf16").unwrap();
    let mut b = Session::new(&model, Some(&o)).unwrap();
    assert_close_not_equal(&mut s, &mut b, "bf16 compute");
}

#[test]
fn weight_dtype_converts_at_load() {
    let model = load();
    let mut s = session(&model);
    let mut o = ModelOptions::new().unwrap();
    let err = o.set_weight_dtype("int8").unwrap_err();
    assert!(err.message().contains("'int8'"), "{}", err);
    o.set_weight_dtype("bf16").unwrap();
    let m16 = Model::load_with(model_dir(), &o).unwrap();
    let mut b = session(&m16);
    assert_close_not_equal(&mut s, &mut b, "bf16 weights");
}
