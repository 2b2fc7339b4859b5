//! Raw declarations of libdisclvlm's C API, one for one with
//! `include/disclvlm.h` (a test, `tests/header_sync.rs`, checks that every
//! function, status value, flag and version macro of the header is here with
//! the same arity and value, and nothing else).
//!
//! Everything here is `unsafe` and follows the C contract documented in the
//! header; the `disclvlm` crate is the safe API.

#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};
// std::os::raw rather than core::ffi (stable only since Rust 1.64), so that
// the crate builds with Debian 12's rustc 1.63.
pub use std::os::raw::{c_char, c_int, c_uint, c_void};

// ---- Version ---------------------------------------------------------------

pub const DLV_VERSION_MAJOR: c_int = 0;
pub const DLV_VERSION_MINOR: c_int = 1;
pub const DLV_VERSION_PATCH: c_int = 0;
pub const DLV_VERSION_STRING: &str = "0.1.0";
pub const DLV_VERSION_NUMBER: c_int =
    DLV_VERSION_MAJOR * 10000 + DLV_VERSION_MINOR * 100 + DLV_VERSION_PATCH;
pub const DLV_ABI_VERSION: c_int = 1;

// ---- Status and errors -----------------------------------------------------

/// `enum dlv_status`. An integer, not a Rust enum: a newer library may
/// return codes this crate does not know, which a Rust enum cannot hold.
pub type dlv_status = c_int;

pub const DLV_OK: dlv_status = 0;
pub const DLV_E_INVALID_ARG: dlv_status = 1;
pub const DLV_E_IO: dlv_status = 2;
pub const DLV_E_FORMAT: dlv_status = 3;
pub const DLV_E_UNSUPPORTED: dlv_status = 4;
pub const DLV_E_NOMEM: dlv_status = 5;
pub const DLV_E_BACKEND: dlv_status = 6;
pub const DLV_E_NOT_IMPLEMENTED: dlv_status = 7;
pub const DLV_E_NUMERIC: dlv_status = 8;
pub const DLV_E_CANCELLED: dlv_status = 9;
pub const DLV_E_BUFFER_TOO_SMALL: dlv_status = 10;

// ---- Flags -----------------------------------------------------------------

pub const DLV_EMBED_HIDDEN: c_uint = 1;
pub const DLV_TOKENIZE_ADD_SPECIAL: c_uint = 1;
pub const DLV_DETOKENIZE_SKIP_SPECIAL: c_uint = 1;
pub const DLV_POSITIONS_TEXT: c_int = 0;
pub const DLV_POSITIONS_AFTER_IMAGE: c_int = 1;

// ---- Handles ---------------------------------------------------------------

macro_rules! opaque {
    ($($name:ident),* $(,)?) => {$(
        /// An opaque C handle; only ever used behind a pointer.
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    )*};
}

opaque!(
    dlv_model,
    dlv_session,
    dlv_model_options,
    dlv_session_options,
    dlv_image,
    dlv_batch,
    dlv_preprocess_options,
    dlv_tokenizer,
    dlv_train_options,
    dlv_comm,
);

/// `struct dlv_train_stats`; set `struct_size` to its size
/// (`dlv_train_stats::init()` does, like `DLV_TRAIN_STATS_INIT`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct dlv_train_stats {
    pub struct_size: usize,
    pub loss: f64,
    pub loss_contrastive: f64,
    pub loss_ntp: f64,
    pub grad_norm: f64,
    pub learning_rate: f64,
    pub logit_scale: f64,
    pub step: u64,
    pub tokens: u64,
}

impl dlv_train_stats {
    /// `DLV_TRAIN_STATS_INIT`: zeros with `struct_size` set.
    pub fn init() -> Self {
        dlv_train_stats { struct_size: std::mem::size_of::<Self>(), ..Default::default() }
    }
}

extern "C" {
    // ---- Status and errors
    pub fn dlv_status_str(status: dlv_status) -> *const c_char;
    pub fn dlv_last_error() -> *const c_char;
    pub fn dlv_clear_error();

    // ---- Run-time version
    pub fn dlv_version() -> *const c_char;
    pub fn dlv_version_numbers(major: *mut c_int, minor: *mut c_int, patch: *mut c_int);
    pub fn dlv_build_features() -> *const c_char;

    // ---- Model options
    pub fn dlv_model_options_new(out: *mut *mut dlv_model_options) -> dlv_status;
    pub fn dlv_model_options_free(opts: *mut dlv_model_options);
    pub fn dlv_model_options_set_backend(
        opts: *mut dlv_model_options,
        name: *const c_char,
    ) -> dlv_status;
    pub fn dlv_model_options_set_device(opts: *mut dlv_model_options, device: c_int) -> dlv_status;
    pub fn dlv_model_options_set_weight_dtype(
        opts: *mut dlv_model_options,
        dtype: *const c_char,
    ) -> dlv_status;

    // ---- Model
    pub fn dlv_model_load(
        dir: *const c_char,
        opts: *const dlv_model_options,
        out: *mut *mut dlv_model,
    ) -> dlv_status;
    pub fn dlv_model_free(model: *mut dlv_model);
    pub fn dlv_model_embed_dim(model: *const dlv_model, out: *mut usize) -> dlv_status;
    pub fn dlv_model_describe(
        model: *const dlv_model,
        buf: *mut c_char,
        cap: usize,
        needed: *mut usize,
    ) -> dlv_status;

    // ---- Session
    pub fn dlv_session_options_new(out: *mut *mut dlv_session_options) -> dlv_status;
    pub fn dlv_session_options_free(opts: *mut dlv_session_options);
    pub fn dlv_session_options_set_threads(
        opts: *mut dlv_session_options,
        n_threads: c_int,
    ) -> dlv_status;
    pub fn dlv_session_options_set_compute(
        opts: *mut dlv_session_options,
        dtype: *const c_char,
    ) -> dlv_status;
    pub fn dlv_session_options_set_truncate(
        opts: *mut dlv_session_options,
        truncate: c_int,
    ) -> dlv_status;
    pub fn dlv_session_new(
        model: *mut dlv_model,
        opts: *const dlv_session_options,
        out: *mut *mut dlv_session,
    ) -> dlv_status;
    pub fn dlv_session_free(session: *mut dlv_session);
    pub fn dlv_session_cancel(session: *mut dlv_session) -> dlv_status;

    // ---- Images
    pub fn dlv_image_from_file(path: *const c_char, out: *mut *mut dlv_image) -> dlv_status;
    pub fn dlv_image_from_memory(
        data: *const c_void,
        n_bytes: usize,
        out: *mut *mut dlv_image,
    ) -> dlv_status;
    pub fn dlv_image_from_rgb(
        rgb: *const u8,
        width: u32,
        height: u32,
        stride_bytes: usize,
        out: *mut *mut dlv_image,
    ) -> dlv_status;
    pub fn dlv_image_free(image: *mut dlv_image);

    // ---- Embeddings and scores
    pub fn dlv_encode_images(
        session: *mut dlv_session,
        images: *const *const dlv_image,
        n: usize,
        out: *mut f32,
        out_len: usize,
    ) -> dlv_status;
    pub fn dlv_encode_image_file(
        session: *mut dlv_session,
        path: *const c_char,
        out: *mut f32,
        out_len: usize,
    ) -> dlv_status;
    pub fn dlv_encode_image_memory(
        session: *mut dlv_session,
        data: *const c_void,
        n_bytes: usize,
        out: *mut f32,
        out_len: usize,
    ) -> dlv_status;
    pub fn dlv_encode_image_rgb(
        session: *mut dlv_session,
        rgb: *const u8,
        width: u32,
        height: u32,
        stride_bytes: usize,
        out: *mut f32,
        out_len: usize,
    ) -> dlv_status;
    pub fn dlv_encode_text(
        session: *mut dlv_session,
        texts: *const *const c_char,
        n: usize,
        out: *mut f32,
        out_len: usize,
    ) -> dlv_status;
    pub fn dlv_text_positions(
        session: *mut dlv_session,
        text: *const c_char,
        what: c_int,
        positions: *mut usize,
        max_positions: *mut usize,
    ) -> dlv_status;
    pub fn dlv_embed_tokens(
        session: *mut dlv_session,
        ids: *const i32,
        n_ids: usize,
        image: *const dlv_image,
        flags: c_uint,
        out: *mut f32,
        out_len: usize,
    ) -> dlv_status;
    pub fn dlv_session_logit_scale(session: *const dlv_session, out: *mut f32) -> dlv_status;
    pub fn dlv_score(
        session: *mut dlv_session,
        img: *const f32,
        n_img: usize,
        txt: *const f32,
        n_txt: usize,
        dim: usize,
        out: *mut f32,
        out_len: usize,
    ) -> dlv_status;

    // ---- Training
    pub fn dlv_batch_new(out: *mut *mut dlv_batch) -> dlv_status;
    pub fn dlv_batch_free(batch: *mut dlv_batch);
    pub fn dlv_batch_add(
        batch: *mut dlv_batch,
        image: *const dlv_image,
        caption: *const c_char,
        long_caption: *const c_char,
    ) -> dlv_status;
    pub fn dlv_train_options_new(out: *mut *mut dlv_train_options) -> dlv_status;
    pub fn dlv_train_options_free(opts: *mut dlv_train_options);
    pub fn dlv_train_options_set(
        opts: *mut dlv_train_options,
        key: *const c_char,
        value: *const c_char,
    ) -> dlv_status;
    pub fn dlv_train_begin(session: *mut dlv_session, opts: *const dlv_train_options)
        -> dlv_status;
    pub fn dlv_train_step(
        session: *mut dlv_session,
        batch: *const dlv_batch,
        stats: *mut dlv_train_stats,
    ) -> dlv_status;
    pub fn dlv_train_checkpoint_save(session: *mut dlv_session, dir: *const c_char) -> dlv_status;
    pub fn dlv_train_checkpoint_load(session: *mut dlv_session, dir: *const c_char) -> dlv_status;
    // ---- Data-parallel training
    pub fn dlv_comm_open(kind: *const c_char, out: *mut *mut dlv_comm) -> dlv_status;
    pub fn dlv_comm_free(comm: *mut dlv_comm);
    pub fn dlv_comm_rank(comm: *const dlv_comm, rank: *mut c_int, size: *mut c_int) -> dlv_status;
    pub fn dlv_comm_describe(comm: *const dlv_comm) -> *const c_char;
    pub fn dlv_comm_sum_f64(comm: *mut dlv_comm, buf: *mut f64, n: usize) -> dlv_status;
    pub fn dlv_comm_all_gather(
        comm: *mut dlv_comm,
        send: *const c_void,
        bytes: usize,
        recv: *mut c_void,
    ) -> dlv_status;
    pub fn dlv_comm_broadcast(
        comm: *mut dlv_comm,
        buf: *mut c_void,
        bytes: usize,
        root: c_int,
    ) -> dlv_status;
    pub fn dlv_comm_abort(comm: *mut dlv_comm, message: *const c_char, code: c_int);
    pub fn dlv_session_set_comm(session: *mut dlv_session, comm: *mut dlv_comm) -> dlv_status;
    pub fn dlv_train_check_outputs(
        session: *mut dlv_session,
        adapter_dir: *const c_char,
        checkpoint_dir: *const c_char,
        model_dir: *const c_char,
    ) -> dlv_status;
    pub fn dlv_train_save_model(
        session: *mut dlv_session,
        dir: *const c_char,
        dtype: *const c_char,
    ) -> dlv_status;

    // ---- Adapters
    pub fn dlv_adapter_load(session: *mut dlv_session, dir: *const c_char) -> dlv_status;
    pub fn dlv_adapter_save(session: *mut dlv_session, dir: *const c_char) -> dlv_status;
    pub fn dlv_adapter_clear(session: *mut dlv_session) -> dlv_status;

    // ---- Image preprocessing
    pub fn dlv_preprocess_options_new(out: *mut *mut dlv_preprocess_options) -> dlv_status;
    pub fn dlv_preprocess_options_free(opts: *mut dlv_preprocess_options);
    pub fn dlv_preprocess_options_set_pad_square(
        opts: *mut dlv_preprocess_options,
        on: c_int,
    ) -> dlv_status;
    pub fn dlv_preprocess_options_set_exif_rotate(
        opts: *mut dlv_preprocess_options,
        on: c_int,
    ) -> dlv_status;
    pub fn dlv_preprocess_options_set_max_pixels(
        opts: *mut dlv_preprocess_options,
        max_pixels: u64,
    ) -> dlv_status;
    pub fn dlv_image_check(
        model: *const dlv_model,
        image: *const dlv_image,
        opts: *const dlv_preprocess_options,
    ) -> dlv_status;
    pub fn dlv_model_image_size(
        model: *const dlv_model,
        channels: *mut usize,
        height: *mut usize,
        width: *mut usize,
    ) -> dlv_status;
    pub fn dlv_preprocess_image(
        model: *const dlv_model,
        image: *const dlv_image,
        opts: *const dlv_preprocess_options,
        out: *mut f32,
        out_len: usize,
    ) -> dlv_status;

    // ---- Tokenizers
    pub fn dlv_tokenizer_load(path: *const c_char, out: *mut *mut dlv_tokenizer) -> dlv_status;
    pub fn dlv_tokenizer_free(tok: *mut dlv_tokenizer);
    pub fn dlv_tokenize(
        tok: *const dlv_tokenizer,
        text: *const c_char,
        len: usize,
        flags: c_uint,
        ids: *mut i32,
        cap: usize,
        n_ids: *mut usize,
    ) -> dlv_status;
    pub fn dlv_detokenize(
        tok: *const dlv_tokenizer,
        ids: *const i32,
        n: usize,
        flags: c_uint,
        buf: *mut c_char,
        cap: usize,
        needed: *mut usize,
    ) -> dlv_status;
    pub fn dlv_model_tokenizer(
        model: *const dlv_model,
        out: *mut *const dlv_tokenizer,
    ) -> dlv_status;
    pub fn dlv_tokenizer_vocab_size(tok: *const dlv_tokenizer, out: *mut usize) -> dlv_status;
}
