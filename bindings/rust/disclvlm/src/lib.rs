//! Safe Rust API of libdisclvlm: image and text embeddings, scores, adapters
//! and tokenizers of LLaVA-style vision-language models.
//!
//! Every handle frees its C object when dropped. Every fallible call returns
//! [`Result`]; its [`Error`] carries the library's status and the message
//! that `dlv_last_error()` gave on the calling thread right after the call.
//!
//! Threads follow the C contract (include/disclvlm.h):
//! - [`Model`] and [`Tokenizer`] are immutable: `Send + Sync`, share them by
//!   reference (e.g. with `std::thread::scope`) or in an `Arc`.
//! - A [`Session`] borrows its model (the lifetime `'m` keeps the model alive
//!   as long as the session) and is used by one thread at a time: `Send`, not
//!   `Sync`; its calls take `&mut self`.
//! - A [`CancelHandle`] (`Send + Sync`) may cancel a session's running or next
//!   long call from any thread; it shares ownership of the C session, so the
//!   session is freed only when both are gone.
//! - [`Image`]s are immutable copies of what they were made from: `Send + Sync`.
//!
//! ```no_run
//! use disclvlm::{Image, Model};
//! let model = Model::load("path/to/llava")?;
//! let mut session = model.session()?;
//! let cat = Image::from_file("cat.jpg")?;
//! let images = session.encode_images(&[&cat])?;
//! let texts = session.encode_texts(&["a photo of a cat", "a photo of a dog"])?;
//! let scores = session.score(&images, &texts)?; // 1 x 2 cosines
//! println!("{:?}", scores.row(0));
//! # Ok::<(), disclvlm::Error>(())
//! ```

pub use disclvlm_sys as sys;

/// The README's examples compile (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Arc;

// ---- Errors ----------------------------------------------------------------

/// What kind of failure a call had (the C library's `dlv_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// A bad handle, size or option (`DLV_E_INVALID_ARG`).
    InvalidArg,
    /// A file could not be opened, read or written (`DLV_E_IO`).
    Io,
    /// A file's content is malformed (`DLV_E_FORMAT`).
    Format,
    /// Valid input that this build cannot handle (`DLV_E_UNSUPPORTED`).
    Unsupported,
    /// An allocation failed (`DLV_E_NOMEM`).
    NoMem,
    /// A compute backend is missing or failed (`DLV_E_BACKEND`).
    Backend,
    /// Declared but not implemented in this version (`DLV_E_NOT_IMPLEMENTED`).
    NotImplemented,
    /// A NaN or Inf appeared (`DLV_E_NUMERIC`).
    Numeric,
    /// [`Session::cancel`] or a [`CancelHandle`] stopped the call (`DLV_E_CANCELLED`).
    Cancelled,
    /// An output buffer is too small (`DLV_E_BUFFER_TOO_SMALL`).
    BufferTooSmall,
    /// A code this crate does not know (from a newer library).
    Other(i32),
}

impl Status {
    fn from_code(code: sys::dlv_status) -> Status {
        match code {
            sys::DLV_E_INVALID_ARG => Status::InvalidArg,
            sys::DLV_E_IO => Status::Io,
            sys::DLV_E_FORMAT => Status::Format,
            sys::DLV_E_UNSUPPORTED => Status::Unsupported,
            sys::DLV_E_NOMEM => Status::NoMem,
            sys::DLV_E_BACKEND => Status::Backend,
            sys::DLV_E_NOT_IMPLEMENTED => Status::NotImplemented,
            sys::DLV_E_NUMERIC => Status::Numeric,
            sys::DLV_E_CANCELLED => Status::Cancelled,
            sys::DLV_E_BUFFER_TOO_SMALL => Status::BufferTooSmall,
            other => Status::Other(other),
        }
    }

    /// The C value of this status.
    pub fn code(self) -> i32 {
        match self {
            Status::InvalidArg => sys::DLV_E_INVALID_ARG,
            Status::Io => sys::DLV_E_IO,
            Status::Format => sys::DLV_E_FORMAT,
            Status::Unsupported => sys::DLV_E_UNSUPPORTED,
            Status::NoMem => sys::DLV_E_NOMEM,
            Status::Backend => sys::DLV_E_BACKEND,
            Status::NotImplemented => sys::DLV_E_NOT_IMPLEMENTED,
            Status::Numeric => sys::DLV_E_NUMERIC,
            Status::Cancelled => sys::DLV_E_CANCELLED,
            Status::BufferTooSmall => sys::DLV_E_BUFFER_TOO_SMALL,
            Status::Other(c) => c,
        }
    }

    /// The library's short English name of the status ("invalid argument", ...).
    pub fn name(self) -> &'static str {
        // dlv_status_str returns a static string, never NULL.
        let s = unsafe { CStr::from_ptr(sys::dlv_status_str(self.code())) };
        s.to_str().unwrap_or("unknown status")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed call: the status and the library's message (which names the
/// file, tensor or field). Errors found on the Rust side before calling the
/// library (a NUL byte inside a string, a slice shorter than the sizes given
/// with it) have [`Status::InvalidArg`] and a message of the same form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

impl Error {
    /// The error of a call that just returned `code`, with this thread's
    /// `dlv_last_error()` (read at once, before any other library call).
    fn last(code: sys::dlv_status) -> Error {
        let p = unsafe { sys::dlv_last_error() };
        let message = if p.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        };
        Error { status: Status::from_code(code), message }
    }

    fn invalid(message: String) -> Error {
        Error { status: Status::InvalidArg, message }
    }

    /// What kind of failure it was.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The library's message ("" only if the library gave none).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.status)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

fn check(code: sys::dlv_status) -> Result<()> {
    if code == sys::DLV_OK {
        Ok(())
    } else {
        Err(Error::last(code))
    }
}

fn c_string(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|e| {
        Error::invalid(format!(
            "{}: the string has a NUL byte at offset {}",
            what,
            e.nul_position()
        ))
    })
}

fn c_path(what: &str, p: &Path) -> Result<CString> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        p.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = p
        .to_str()
        .ok_or_else(|| Error::invalid(format!("{}: path {:?} is not valid UTF-8", what, p)))?
        .as_bytes()
        .to_vec();
    CString::new(bytes)
        .map_err(|_| Error::invalid(format!("{}: path {:?} has a NUL byte", what, p)))
}

/// A handle a constructor wrote to `out`, or the constructor's error.
fn made<T>(code: sys::dlv_status, out: *mut T) -> Result<NonNull<T>> {
    check(code)?;
    NonNull::new(out).ok_or_else(|| Error {
        status: Status::Other(-1),
        message: "libdisclvlm returned DLV_OK and a NULL handle".to_string(),
    })
}

/// The library's version string, e.g. "0.1.0".
pub fn version() -> String {
    unsafe { CStr::from_ptr(sys::dlv_version()) }.to_string_lossy().into_owned()
}

/// The library's version as (major, minor, patch).
pub fn version_numbers() -> (i32, i32, i32) {
    let (mut a, mut b, mut c): (c_int, c_int, c_int) = (0, 0, 0);
    unsafe { sys::dlv_version_numbers(&mut a, &mut b, &mut c) };
    (a, b, c)
}

/// The features of this build of the library, e.g. "cpu,cuda".
pub fn build_features() -> String {
    unsafe { CStr::from_ptr(sys::dlv_build_features()) }.to_string_lossy().into_owned()
}

// ---- Matrices --------------------------------------------------------------

/// A row-major matrix of f32: embeddings (one row per input, `cols` = the
/// embedding size) or scores (one row per image, one column per text).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// A matrix over `data` (its length must be rows * cols).
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Matrix> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::invalid(format!(
                "Matrix::new: {} values do not make {} x {}",
                data.len(),
                rows,
                cols
            )));
        }
        Ok(Matrix { rows, cols, data })
    }

    fn zeros(what: &str, rows: usize, cols: usize) -> Result<Matrix> {
        let n = rows.checked_mul(cols).ok_or_else(|| {
            Error::invalid(format!("{}: {} x {} values do not fit in memory", what, rows, cols))
        })?;
        Ok(Matrix { rows, cols, data: vec![0.0; n] })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i` (panics if `i >= rows`).
    pub fn row(&self, i: usize) -> &[f32] {
        assert!(i < self.rows, "row {} of a matrix of {} rows", i, self.rows);
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows in order.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[f32]> + '_ {
        (0..self.rows).map(move |i| self.row(i))
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
}

// ---- Model -----------------------------------------------------------------

/// How to load a model (`dlv_model_options`).
pub struct ModelOptions {
    ptr: NonNull<sys::dlv_model_options>,
}

// A plain value the library only reads in dlv_model_load.
unsafe impl Send for ModelOptions {}
unsafe impl Sync for ModelOptions {}

impl ModelOptions {
    pub fn new() -> Result<ModelOptions> {
        let mut p = ptr::null_mut();
        let code = unsafe { sys::dlv_model_options_new(&mut p) };
        Ok(ModelOptions { ptr: made(code, p)? })
    }

    /// "cpu" (the default), "cuda" or "auto".
    pub fn set_backend(&mut self, name: &str) -> Result<()> {
        let name = c_string("ModelOptions::set_backend", name)?;
        check(unsafe { sys::dlv_model_options_set_backend(self.ptr.as_ptr(), name.as_ptr()) })
    }

    /// The device ordinal for device backends (default 0).
    pub fn set_device(&mut self, device: i32) -> Result<()> {
        check(unsafe { sys::dlv_model_options_set_device(self.ptr.as_ptr(), device) })
    }

    /// The dtype the weights are held in once loaded: "auto" (the default:
    /// as stored), "f32", "bf16" or "f16" (converted once at load, as
    /// transformers' `torch_dtype`).
    pub fn set_weight_dtype(&mut self, dtype: &str) -> Result<()> {
        let dtype = c_string("ModelOptions::set_weight_dtype", dtype)?;
        check(unsafe { sys::dlv_model_options_set_weight_dtype(self.ptr.as_ptr(), dtype.as_ptr()) })
    }
}

impl Drop for ModelOptions {
    fn drop(&mut self) {
        unsafe { sys::dlv_model_options_free(self.ptr.as_ptr()) }
    }
}

/// A loaded model: weights, config and tokenizer. Immutable, so `Send +
/// Sync`; sessions borrow it.
pub struct Model {
    ptr: NonNull<sys::dlv_model>,
    dim: usize,
}

// The C contract: a dlv_model is immutable after loading and may be shared
// by threads.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Model {
    /// Loads a Hugging Face LlavaForConditionalGeneration directory on the
    /// default backend (CPU).
    pub fn load<P: AsRef<Path>>(dir: P) -> Result<Model> {
        Model::load_impl(dir.as_ref(), None)
    }

    /// Loads a model directory with options.
    pub fn load_with<P: AsRef<Path>>(dir: P, opts: &ModelOptions) -> Result<Model> {
        Model::load_impl(dir.as_ref(), Some(opts))
    }

    fn load_impl(dir: &Path, opts: Option<&ModelOptions>) -> Result<Model> {
        let dir = c_path("Model::load", dir)?;
        let opts = opts.map_or(ptr::null(), |o| o.ptr.as_ptr() as *const _);
        let mut p = ptr::null_mut();
        let code = unsafe { sys::dlv_model_load(dir.as_ptr(), opts, &mut p) };
        let ptr = made(code, p)?;
        // Owned from here on: an error below frees it.
        let mut model = Model { ptr, dim: 0 };
        let mut dim = 0usize;
        check(unsafe { sys::dlv_model_embed_dim(model.ptr.as_ptr(), &mut dim) })?;
        model.dim = dim;
        Ok(model)
    }

    /// The length of every embedding the model produces.
    pub fn embed_dim(&self) -> usize {
        self.dim
    }

    /// A JSON description of the model (sizes, dtypes, parameter counts).
    pub fn describe(&self) -> Result<String> {
        let mut needed = 0usize;
        check(unsafe {
            sys::dlv_model_describe(self.ptr.as_ptr(), ptr::null_mut(), 0, &mut needed)
        })?;
        let mut buf = vec![0u8; needed.max(1)];
        check(unsafe {
            sys::dlv_model_describe(
                self.ptr.as_ptr(),
                buf.as_mut_ptr() as *mut c_char,
                buf.len(),
                &mut needed,
            )
        })?;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        buf.truncate(end);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// The shape (channels, height, width) of [`Model::preprocess_image`]'s output.
    pub fn image_size(&self) -> Result<(usize, usize, usize)> {
        let (mut c, mut h, mut w) = (0usize, 0usize, 0usize);
        check(unsafe { sys::dlv_model_image_size(self.ptr.as_ptr(), &mut c, &mut h, &mut w) })?;
        Ok((c, h, w))
    }

    /// The pixels the vision tower sees (channels-first float32).
    pub fn preprocess_image(
        &self,
        image: &Image,
        opts: Option<&PreprocessOptions>,
    ) -> Result<Vec<f32>> {
        let (c, h, w) = self.image_size()?;
        let mut out = vec![0f32; c * h * w];
        self.preprocess_image_into(image, opts, &mut out)?;
        Ok(out)
    }

    /// [`Model::preprocess_image`] into `out` (its length is the capacity).
    pub fn preprocess_image_into(
        &self,
        image: &Image,
        opts: Option<&PreprocessOptions>,
        out: &mut [f32],
    ) -> Result<()> {
        let opts = opts.map_or(ptr::null(), |o| o.ptr.as_ptr() as *const _);
        check(unsafe {
            sys::dlv_preprocess_image(
                self.ptr.as_ptr(),
                image.ptr.as_ptr(),
                opts,
                out.as_mut_ptr(),
                out.len(),
            )
        })
    }

    /// The model's own tokenizer (borrowed from the model).
    pub fn tokenizer(&self) -> Result<Tokenizer<'_>> {
        let mut p = ptr::null();
        let code = unsafe { sys::dlv_model_tokenizer(self.ptr.as_ptr(), &mut p) };
        let ptr = made(code, p as *mut sys::dlv_tokenizer)?;
        Ok(Tokenizer { ptr, owned: false, _model: PhantomData })
    }

    /// A session with the default options.
    pub fn session(&self) -> Result<Session<'_>> {
        Session::new(self, None)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        unsafe { sys::dlv_model_free(self.ptr.as_ptr()) }
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model").field("embed_dim", &self.dim).finish()
    }
}

// ---- Session ---------------------------------------------------------------

/// How to make a session (`dlv_session_options`).
pub struct SessionOptions {
    ptr: NonNull<sys::dlv_session_options>,
}

unsafe impl Send for SessionOptions {}
unsafe impl Sync for SessionOptions {}

impl SessionOptions {
    pub fn new() -> Result<SessionOptions> {
        let mut p = ptr::null_mut();
        let code = unsafe { sys::dlv_session_options_new(&mut p) };
        Ok(SessionOptions { ptr: made(code, p)? })
    }

    /// Worker threads for CPU compute; 0 = one per online CPU (the default).
    pub fn set_threads(&mut self, n_threads: i32) -> Result<()> {
        check(unsafe { sys::dlv_session_options_set_threads(self.ptr.as_ptr(), n_threads) })
    }

    /// What the matrix products compute in: `"f32"` (the default, exact)
    /// or `"bf16"` (inputs rounded to bf16, f32 accumulation; embeddings
    /// within cosine 0.9999 of f32). Another name is an error.
    pub fn set_compute(&mut self, dtype: &str) -> Result<()> {
        let c = c_string("set_compute", dtype)?;
        check(unsafe { sys::dlv_session_options_set_compute(self.ptr.as_ptr(), c.as_ptr()) })
    }

    /// Texts longer than the model's `max_position_embeddings`: refused
    /// (`false`, the default, an error naming the text and the limit) or cut
    /// from the caption's end (`true`), in encoding and training.
    pub fn set_truncate(&mut self, truncate: bool) -> Result<()> {
        check(unsafe {
            sys::dlv_session_options_set_truncate(self.ptr.as_ptr(), i32::from(truncate))
        })
    }
}

impl Drop for SessionOptions {
    fn drop(&mut self) {
        unsafe { sys::dlv_session_options_free(self.ptr.as_ptr()) }
    }
}

/// Owns the C session; shared by a [`Session`] and its [`CancelHandle`]s,
/// freed with the last of them.
struct SessionHandle {
    ptr: NonNull<sys::dlv_session>,
}

// Sound because of what the crate does with it: only the one Session calls
// anything but dlv_session_cancel (and it is not Sync), dlv_session_cancel
// may come from any thread at any time, and dlv_session_free runs when the
// last owner drops it, when no other call can be running.
unsafe impl Send for SessionHandle {}
unsafe impl Sync for SessionHandle {}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        unsafe { sys::dlv_session_free(self.ptr.as_ptr()) }
    }
}

/// A workspace, adapter and optimizer on a model: what computes. Used by
/// one thread at a time (`Send`, not `Sync`); the model must outlive it.
///
/// A session cannot be shared between threads:
/// ```compile_fail,E0277
/// fn is_sync<T: Sync>() {}
/// is_sync::<disclvlm::Session<'static>>();
/// ```
/// nor outlive its model:
/// ```compile_fail,E0597
/// let session = {
///     let model = disclvlm::Model::load("m").unwrap();
///     model.session().unwrap()
/// };
/// ```
/// nor keep a borrowed image past its end:
/// ```compile_fail,E0597
/// let mut batch = disclvlm::Batch::new().unwrap();
/// {
///     let image = disclvlm::Image::from_file("a.png").unwrap();
///     batch.add(&image, "a caption", None).unwrap();
/// }
/// drop(batch);
/// ```
pub struct Session<'m> {
    handle: Arc<SessionHandle>,
    dim: usize,
    _model: PhantomData<&'m Model>,
    _not_sync: PhantomData<Cell<()>>,
}

/// Cancels a session's running or next long call from any thread
/// ([`Session::cancel_handle`]). The call then fails with
/// [`Status::Cancelled`]. Holding one keeps the C session alive.
#[derive(Clone)]
pub struct CancelHandle<'m> {
    handle: Arc<SessionHandle>,
    _model: PhantomData<&'m Model>,
}

impl CancelHandle<'_> {
    pub fn cancel(&self) -> Result<()> {
        check(unsafe { sys::dlv_session_cancel(self.handle.ptr.as_ptr()) })
    }
}

/// What one training step did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrainStats {
    pub loss: f64,
    pub loss_contrastive: f64,
    pub loss_ntp: f64,
    pub grad_norm: f64,
    pub learning_rate: f64,
    pub logit_scale: f64,
    pub step: u64,
    pub tokens: u64,
}

/// The bytes an RGB buffer of this geometry must have (the C side reads
/// `stride` bytes per row but the last, which needs `3 * width`).
fn rgb_check(what: &str, rgb: &[u8], width: u32, height: u32, stride: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Ok(()); // the library reports the empty image
    }
    let row = 3 * width as usize;
    let need = (height as usize - 1).checked_mul(stride.max(row)).and_then(|n| n.checked_add(row));
    match need {
        Some(n) if rgb.len() >= n => Ok(()),
        _ => Err(Error::invalid(format!(
            "{}: the buffer has {} bytes, a {}x{} image with stride {} needs {}",
            what,
            rgb.len(),
            width,
            height,
            stride,
            need.map_or_else(|| "more than fit in memory".to_string(), |n| n.to_string())
        ))),
    }
}

impl<'m> Session<'m> {
    /// A session on `model`; `opts` may be None for the defaults.
    pub fn new(model: &'m Model, opts: Option<&SessionOptions>) -> Result<Session<'m>> {
        let opts = opts.map_or(ptr::null(), |o| o.ptr.as_ptr() as *const _);
        let mut p = ptr::null_mut();
        // dlv_session_new takes a non-const pointer but does not modify the
        // model (immutable after loading).
        let code = unsafe { sys::dlv_session_new(model.ptr.as_ptr(), opts, &mut p) };
        Ok(Session {
            handle: Arc::new(SessionHandle { ptr: made(code, p)? }),
            dim: model.dim,
            _model: PhantomData,
            _not_sync: PhantomData,
        })
    }

    fn raw(&self) -> *mut sys::dlv_session {
        self.handle.ptr.as_ptr()
    }

    /// The length of every embedding (the model's).
    pub fn embed_dim(&self) -> usize {
        self.dim
    }

    /// Makes the running or next long call fail with [`Status::Cancelled`].
    pub fn cancel(&self) -> Result<()> {
        check(unsafe { sys::dlv_session_cancel(self.raw()) })
    }

    /// A handle that cancels this session from another thread.
    pub fn cancel_handle(&self) -> CancelHandle<'m> {
        CancelHandle { handle: Arc::clone(&self.handle), _model: PhantomData }
    }

    fn rows(&self, what: &str, n: usize) -> Result<Matrix> {
        Matrix::zeros(what, n, self.dim)
    }

    /// Embeds images: one L2-normalised row per image.
    pub fn encode_images(&mut self, images: &[&Image]) -> Result<Matrix> {
        let mut m = self.rows("Session::encode_images", images.len())?;
        self.encode_images_into(images, &mut m.data)?;
        Ok(m)
    }

    /// [`Session::encode_images`] into `out` (n x dim, its length the capacity).
    pub fn encode_images_into(&mut self, images: &[&Image], out: &mut [f32]) -> Result<()> {
        let ptrs: Vec<*const sys::dlv_image> =
            images.iter().map(|im| im.ptr.as_ptr() as *const _).collect();
        check(unsafe {
            sys::dlv_encode_images(
                self.raw(),
                ptrs.as_ptr(),
                ptrs.len(),
                out.as_mut_ptr(),
                out.len(),
            )
        })
    }

    /// Embeds one image file (PNG or JPEG).
    pub fn encode_image_file<P: AsRef<Path>>(&mut self, path: P) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.dim];
        self.encode_image_file_into(path, &mut out)?;
        Ok(out)
    }

    pub fn encode_image_file_into<P: AsRef<Path>>(
        &mut self,
        path: P,
        out: &mut [f32],
    ) -> Result<()> {
        let path = c_path("Session::encode_image_file", path.as_ref())?;
        check(unsafe {
            sys::dlv_encode_image_file(self.raw(), path.as_ptr(), out.as_mut_ptr(), out.len())
        })
    }

    /// Embeds one encoded image (PNG or JPEG bytes).
    pub fn encode_image_memory(&mut self, data: &[u8]) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.dim];
        self.encode_image_memory_into(data, &mut out)?;
        Ok(out)
    }

    pub fn encode_image_memory_into(&mut self, data: &[u8], out: &mut [f32]) -> Result<()> {
        check(unsafe {
            sys::dlv_encode_image_memory(
                self.raw(),
                data.as_ptr() as *const _,
                data.len(),
                out.as_mut_ptr(),
                out.len(),
            )
        })
    }

    /// Embeds raw 8-bit RGB pixels (row-major, `stride` bytes between rows).
    pub fn encode_image_rgb(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        stride: usize,
    ) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.dim];
        self.encode_image_rgb_into(rgb, width, height, stride, &mut out)?;
        Ok(out)
    }

    pub fn encode_image_rgb_into(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        stride: usize,
        out: &mut [f32],
    ) -> Result<()> {
        rgb_check("Session::encode_image_rgb", rgb, width, height, stride)?;
        check(unsafe {
            sys::dlv_encode_image_rgb(
                self.raw(),
                rgb.as_ptr(),
                width,
                height,
                stride,
                out.as_mut_ptr(),
                out.len(),
            )
        })
    }

    /// Embeds texts: one L2-normalised row per text.
    pub fn encode_texts<S: AsRef<str>>(&mut self, texts: &[S]) -> Result<Matrix> {
        let mut m = self.rows("Session::encode_texts", texts.len())?;
        self.encode_texts_into(texts, &mut m.data)?;
        Ok(m)
    }

    /// [`Session::encode_texts`] into `out` (n x dim, its length the capacity).
    pub fn encode_texts_into<S: AsRef<str>>(&mut self, texts: &[S], out: &mut [f32]) -> Result<()> {
        let owned = texts
            .iter()
            .map(|t| c_string("Session::encode_texts", t.as_ref()))
            .collect::<Result<Vec<CString>>>()?;
        let ptrs: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
        check(unsafe {
            sys::dlv_encode_text(self.raw(), ptrs.as_ptr(), ptrs.len(), out.as_mut_ptr(), out.len())
        })
    }

    /// `(positions, limit)`: how long the sequence the model runs for `text`
    /// is (its text prompt; with `after_image`, an image prompt followed by
    /// it, as training's next-token loss runs a long caption) and the
    /// model's `max_position_embeddings`.
    pub fn text_positions(&mut self, text: &str, after_image: bool) -> Result<(usize, usize)> {
        let t = c_string("Session::text_positions", text)?;
        let what =
            if after_image { sys::DLV_POSITIONS_AFTER_IMAGE } else { sys::DLV_POSITIONS_TEXT };
        let (mut n, mut max) = (0usize, 0usize);
        check(unsafe { sys::dlv_text_positions(self.raw(), t.as_ptr(), what, &mut n, &mut max) })?;
        Ok((n, max))
    }

    /// Runs exactly these token ids (no BOS, prompt or soft prompt is added)
    /// and returns the final hidden state at the last position: L2-normalised,
    /// or raw when `hidden`. An id equal to the model's image_token_index takes
    /// `image`'s features (exactly one such id when `image` is given).
    pub fn embed_tokens(
        &mut self,
        ids: &[i32],
        image: Option<&Image>,
        hidden: bool,
    ) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.dim];
        self.embed_tokens_into(ids, image, hidden, &mut out)?;
        Ok(out)
    }

    pub fn embed_tokens_into(
        &mut self,
        ids: &[i32],
        image: Option<&Image>,
        hidden: bool,
        out: &mut [f32],
    ) -> Result<()> {
        let image = image.map_or(ptr::null(), |im| im.ptr.as_ptr() as *const _);
        let flags = if hidden { sys::DLV_EMBED_HIDDEN } else { 0 };
        check(unsafe {
            sys::dlv_embed_tokens(
                self.raw(),
                ids.as_ptr(),
                ids.len(),
                image,
                flags,
                out.as_mut_ptr(),
                out.len(),
            )
        })
    }

    /// exp(logit_scale) of the session's adapter (1/0.07 without one).
    pub fn logit_scale(&self) -> Result<f32> {
        let mut v = 0f32;
        check(unsafe { sys::dlv_session_logit_scale(self.raw(), &mut v) })?;
        Ok(v)
    }

    /// Cosines of every image embedding (rows of `images`) with every text
    /// embedding (rows of `texts`): an images.rows() x texts.rows() matrix.
    pub fn score(&mut self, images: &Matrix, texts: &Matrix) -> Result<Matrix> {
        if images.cols != texts.cols {
            return Err(Error::invalid(format!(
                "Session::score: image embeddings have {} columns, text embeddings {}",
                images.cols, texts.cols
            )));
        }
        let mut m = Matrix::zeros("Session::score", images.rows, texts.rows)?;
        self.score_into(images.as_slice(), texts.as_slice(), images.cols, &mut m.data)?;
        Ok(m)
    }

    /// [`Session::score`] on flat row-major slices of `dim` columns into `out`
    /// (n_img x n_txt, its length the capacity).
    pub fn score_into(
        &mut self,
        img: &[f32],
        txt: &[f32],
        dim: usize,
        out: &mut [f32],
    ) -> Result<()> {
        if dim != 0 && (img.len() % dim != 0 || txt.len() % dim != 0) {
            return Err(Error::invalid(format!(
                "Session::score: {} image and {} text values are not rows of dim {}",
                img.len(),
                txt.len(),
                dim
            )));
        }
        let n_img = img.len().checked_div(dim).unwrap_or(0);
        let n_txt = txt.len().checked_div(dim).unwrap_or(0);
        check(unsafe {
            sys::dlv_score(
                self.raw(),
                img.as_ptr(),
                n_img,
                txt.as_ptr(),
                n_txt,
                dim,
                out.as_mut_ptr(),
                out.len(),
            )
        })
    }

    /// Starts (or restarts) training from the session's adapter (or the
    /// model's defaults) with these options. [`Session::train_step`] begins
    /// with the defaults when this was not called.
    pub fn train_begin(&mut self, opts: &TrainOptions) -> Result<()> {
        check(unsafe { sys::dlv_train_begin(self.raw(), opts.ptr.as_ptr()) })
    }

    /// One optimizer step (forward, backward, update) on a batch. The
    /// session's adapter then holds the updated state. A model without a
    /// tokenizer gives [`Status::Unsupported`].
    pub fn train_step(&mut self, batch: &Batch<'_>) -> Result<TrainStats> {
        let mut s = sys::dlv_train_stats::init();
        check(unsafe { sys::dlv_train_step(self.raw(), batch.ptr.as_ptr(), &mut s) })?;
        Ok(TrainStats {
            loss: s.loss,
            loss_contrastive: s.loss_contrastive,
            loss_ntp: s.loss_ntp,
            grad_norm: s.grad_norm,
            learning_rate: s.learning_rate,
            logit_scale: s.logit_scale,
            step: s.step,
            tokens: s.tokens,
        })
    }

    /// Saves a training checkpoint (adapter, optimizer state, step, RNG
    /// state) into a directory, each file atomically.
    pub fn checkpoint_save<P: AsRef<Path>>(&mut self, dir: P) -> Result<()> {
        let dir = c_path("Session::checkpoint_save", dir.as_ref())?;
        check(unsafe { sys::dlv_train_checkpoint_save(self.raw(), dir.as_ptr()) })
    }

    /// Loads a training checkpoint; continuing from it gives bit-identical
    /// steps to an uninterrupted run.
    pub fn checkpoint_load<P: AsRef<Path>>(&mut self, dir: P) -> Result<()> {
        let dir = c_path("Session::checkpoint_load", dir.as_ref())?;
        check(unsafe { sys::dlv_train_checkpoint_load(self.raw(), dir.as_ptr()) })
    }

    /// Before the first step: whether saving the adapter, a checkpoint and
    /// the model into these directories (each optional) would be allowed,
    /// so a run fails at its start rather than at its end.
    pub fn train_check_outputs(
        &mut self,
        adapter_dir: Option<&Path>,
        checkpoint_dir: Option<&Path>,
        model_dir: Option<&Path>,
    ) -> Result<()> {
        let what = "Session::train_check_outputs";
        let a = adapter_dir.map(|d| c_path(what, d)).transpose()?;
        let c = checkpoint_dir.map(|d| c_path(what, d)).transpose()?;
        let m = model_dir.map(|d| c_path(what, d)).transpose()?;
        let p = |x: &Option<CString>| x.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        check(unsafe { sys::dlv_train_check_outputs(self.raw(), p(&a), p(&c), p(&m)) })
    }

    /// Writes the model as it is being trained (the "projector", "llm" and
    /// "vision" sets change its own weights) as a Hugging Face LLaVA
    /// directory. `dtype` None keeps each tensor's dtype; "f32", "bf16" or
    /// "f16" converts all float tensors.
    pub fn train_save_model<P: AsRef<Path>>(&mut self, dir: P, dtype: Option<&str>) -> Result<()> {
        let dir = c_path("Session::train_save_model", dir.as_ref())?;
        let dtype = dtype.map(|d| c_string("Session::train_save_model: dtype", d)).transpose()?;
        let dtype_ptr = dtype.as_ref().map_or(ptr::null(), |d| d.as_ptr());
        check(unsafe { sys::dlv_train_save_model(self.raw(), dir.as_ptr(), dtype_ptr) })
    }

    /// Loads an adapter directory (replaces the session's adapter on success).
    pub fn adapter_load<P: AsRef<Path>>(&mut self, dir: P) -> Result<()> {
        let dir = c_path("Session::adapter_load", dir.as_ref())?;
        check(unsafe { sys::dlv_adapter_load(self.raw(), dir.as_ptr()) })
    }

    /// Saves the session's adapter into a directory (atomically per file).
    pub fn adapter_save<P: AsRef<Path>>(&mut self, dir: P) -> Result<()> {
        let dir = c_path("Session::adapter_save", dir.as_ref())?;
        check(unsafe { sys::dlv_adapter_save(self.raw(), dir.as_ptr()) })
    }

    /// Back to the model's default prompts, no LoRA, no soft prompts.
    pub fn adapter_clear(&mut self) -> Result<()> {
        check(unsafe { sys::dlv_adapter_clear(self.raw()) })
    }
}

// Send: the C session may move between threads as long as one uses it at a
// time, which &mut self and !Sync ensure; the model it borrows is Sync.
unsafe impl Send for Session<'_> {}

impl fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("embed_dim", &self.dim).finish()
    }
}

// ---- Images ----------------------------------------------------------------

/// An image source: a copy of a path, encoded bytes or RGB pixels, decoded
/// when encoded. Immutable: `Send + Sync`.
pub struct Image {
    ptr: NonNull<sys::dlv_image>,
}

unsafe impl Send for Image {}
unsafe impl Sync for Image {}

impl Image {
    /// A PNG or JPEG file (read when encoded).
    pub fn from_file<P: AsRef<Path>>(path: P) -> Result<Image> {
        let path = c_path("Image::from_file", path.as_ref())?;
        let mut p = ptr::null_mut();
        let code = unsafe { sys::dlv_image_from_file(path.as_ptr(), &mut p) };
        Ok(Image { ptr: made(code, p)? })
    }

    /// Encoded PNG or JPEG bytes (copied).
    pub fn from_memory(data: &[u8]) -> Result<Image> {
        let mut p = ptr::null_mut();
        let code =
            unsafe { sys::dlv_image_from_memory(data.as_ptr() as *const _, data.len(), &mut p) };
        Ok(Image { ptr: made(code, p)? })
    }

    /// Raw 8-bit RGB pixels, row-major, `stride` >= 3 * width bytes between
    /// rows (copied).
    pub fn from_rgb(rgb: &[u8], width: u32, height: u32, stride: usize) -> Result<Image> {
        rgb_check("Image::from_rgb", rgb, width, height, stride)?;
        let mut p = ptr::null_mut();
        let code = unsafe { sys::dlv_image_from_rgb(rgb.as_ptr(), width, height, stride, &mut p) };
        Ok(Image { ptr: made(code, p)? })
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        unsafe { sys::dlv_image_free(self.ptr.as_ptr()) }
    }
}

/// Image preprocessing options (`dlv_preprocess_options`).
pub struct PreprocessOptions {
    ptr: NonNull<sys::dlv_preprocess_options>,
}

unsafe impl Send for PreprocessOptions {}
unsafe impl Sync for PreprocessOptions {}

impl PreprocessOptions {
    pub fn new() -> Result<PreprocessOptions> {
        let mut p = ptr::null_mut();
        let code = unsafe { sys::dlv_preprocess_options_new(&mut p) };
        Ok(PreprocessOptions { ptr: made(code, p)? })
    }

    /// LLaVA-1.5's "pad" aspect ratio: pad to a square of the mean colour.
    pub fn set_pad_square(&mut self, on: bool) -> Result<()> {
        check(unsafe { sys::dlv_preprocess_options_set_pad_square(self.ptr.as_ptr(), on as c_int) })
    }

    /// Apply the EXIF orientation.
    pub fn set_exif_rotate(&mut self, on: bool) -> Result<()> {
        check(unsafe {
            sys::dlv_preprocess_options_set_exif_rotate(self.ptr.as_ptr(), on as c_int)
        })
    }

    /// Refuse images with more pixels than this.
    pub fn set_max_pixels(&mut self, max_pixels: u64) -> Result<()> {
        check(unsafe { sys::dlv_preprocess_options_set_max_pixels(self.ptr.as_ptr(), max_pixels) })
    }
}

impl Drop for PreprocessOptions {
    fn drop(&mut self) {
        unsafe { sys::dlv_preprocess_options_free(self.ptr.as_ptr()) }
    }
}

// ---- Training ----------------------------------------------------------------

/// Training options (`dlv_train_options`): key = value strings, as
/// documented in `disclvlm.h` and docs/training.md ("lr", "optimizer",
/// "train", "lora_rank", "schedule", "total_steps", "seed", ...).
///
/// ```no_run
/// let mut o = disclvlm::TrainOptions::new().unwrap();
/// o.set("lr", "1e-3").unwrap().set("train", "soft,lora").unwrap();
/// ```
pub struct TrainOptions {
    ptr: NonNull<sys::dlv_train_options>,
}

// A plain value the library only reads in dlv_train_begin.
unsafe impl Send for TrainOptions {}
unsafe impl Sync for TrainOptions {}

impl TrainOptions {
    /// The defaults.
    pub fn new() -> Result<TrainOptions> {
        let mut p = ptr::null_mut();
        let code = unsafe { sys::dlv_train_options_new(&mut p) };
        Ok(TrainOptions { ptr: made(code, p)? })
    }

    /// Sets one option; an unknown key or a bad value is
    /// [`Status::InvalidArg`] with the library's message naming it.
    /// Returns `self` so that calls chain.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut TrainOptions> {
        let k = c_string("TrainOptions::set: key", key)?;
        let v = c_string("TrainOptions::set: value", value)?;
        check(unsafe { sys::dlv_train_options_set(self.ptr.as_ptr(), k.as_ptr(), v.as_ptr()) })?;
        Ok(self)
    }
}

impl Drop for TrainOptions {
    fn drop(&mut self) {
        unsafe { sys::dlv_train_options_free(self.ptr.as_ptr()) }
    }
}

impl fmt::Debug for TrainOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrainOptions").finish_non_exhaustive()
    }
}

// ---- Training batches ------------------------------------------------------

/// A training batch; it borrows its images (`'i`).
pub struct Batch<'i> {
    ptr: NonNull<sys::dlv_batch>,
    _images: PhantomData<&'i Image>,
}

// It holds pointers to Sync images and copies of strings.
unsafe impl Send for Batch<'_> {}

impl<'i> Batch<'i> {
    pub fn new() -> Result<Batch<'i>> {
        let mut p = ptr::null_mut();
        let code = unsafe { sys::dlv_batch_new(&mut p) };
        Ok(Batch { ptr: made(code, p)?, _images: PhantomData })
    }

    /// Adds an image with its short caption and an optional long caption.
    pub fn add(
        &mut self,
        image: &'i Image,
        caption: &str,
        long_caption: Option<&str>,
    ) -> Result<()> {
        let caption = c_string("Batch::add: caption", caption)?;
        let long = long_caption.map(|s| c_string("Batch::add: long caption", s)).transpose()?;
        let long_ptr = long.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        check(unsafe {
            sys::dlv_batch_add(self.ptr.as_ptr(), image.ptr.as_ptr(), caption.as_ptr(), long_ptr)
        })
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        unsafe { sys::dlv_batch_free(self.ptr.as_ptr()) }
    }
}

// ---- Tokenizers ------------------------------------------------------------

/// A text tokenizer: loaded on its own ([`Tokenizer::load`], `'static`) or
/// borrowed from a model ([`Model::tokenizer`]). Immutable: `Send + Sync`.
pub struct Tokenizer<'a> {
    ptr: NonNull<sys::dlv_tokenizer>,
    owned: bool,
    _model: PhantomData<&'a Model>,
}

unsafe impl Send for Tokenizer<'_> {}
unsafe impl Sync for Tokenizer<'_> {}

impl Tokenizer<'static> {
    /// A model directory, a tokenizer.json or a tokenizer.model.
    pub fn load<P: AsRef<Path>>(path: P) -> Result<Tokenizer<'static>> {
        let path = c_path("Tokenizer::load", path.as_ref())?;
        let mut p = ptr::null_mut();
        let code = unsafe { sys::dlv_tokenizer_load(path.as_ptr(), &mut p) };
        Ok(Tokenizer { ptr: made(code, p)?, owned: true, _model: PhantomData })
    }
}

impl Tokenizer<'_> {
    /// The ids of UTF-8 `text` (bytes; invalid UTF-8 is an error naming the
    /// offset), with the template's special tokens when `add_special`.
    pub fn tokenize<T: AsRef<[u8]>>(&self, text: T, add_special: bool) -> Result<Vec<i32>> {
        let text = text.as_ref();
        let mut n = 0usize;
        self.tokenize_raw(text, add_special, ptr::null_mut(), 0, &mut n)?;
        let mut ids = vec![0i32; n];
        self.tokenize_raw(text, add_special, ids.as_mut_ptr(), ids.len(), &mut n)?;
        ids.truncate(n);
        Ok(ids)
    }

    /// [`Tokenizer::tokenize`] into `ids`; returns how many it wrote.
    pub fn tokenize_into<T: AsRef<[u8]>>(
        &self,
        text: T,
        add_special: bool,
        ids: &mut [i32],
    ) -> Result<usize> {
        let mut n = 0usize;
        self.tokenize_raw(text.as_ref(), add_special, ids.as_mut_ptr(), ids.len(), &mut n)?;
        Ok(n)
    }

    fn tokenize_raw(
        &self,
        text: &[u8],
        add_special: bool,
        ids: *mut i32,
        cap: usize,
        n: &mut usize,
    ) -> Result<()> {
        let flags = if add_special { sys::DLV_TOKENIZE_ADD_SPECIAL } else { 0 };
        check(unsafe {
            sys::dlv_tokenize(
                self.ptr.as_ptr(),
                text.as_ptr() as *const c_char,
                text.len(),
                flags,
                ids,
                cap,
                n,
            )
        })
    }

    /// The text of `ids`, without special tokens when `skip_special`.
    pub fn detokenize(&self, ids: &[i32], skip_special: bool) -> Result<String> {
        let flags = if skip_special { sys::DLV_DETOKENIZE_SKIP_SPECIAL } else { 0 };
        let mut needed = 0usize;
        check(unsafe {
            sys::dlv_detokenize(
                self.ptr.as_ptr(),
                ids.as_ptr(),
                ids.len(),
                flags,
                ptr::null_mut(),
                0,
                &mut needed,
            )
        })?;
        let mut buf = vec![0u8; needed.max(1)];
        check(unsafe {
            sys::dlv_detokenize(
                self.ptr.as_ptr(),
                ids.as_ptr(),
                ids.len(),
                flags,
                buf.as_mut_ptr() as *mut c_char,
                buf.len(),
                &mut needed,
            )
        })?;
        // needed = the text's length + 1; the text may hold NUL bytes.
        buf.truncate(needed.saturating_sub(1));
        Ok(String::from_utf8(buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// 1 + the largest model or added-token id.
    pub fn vocab_size(&self) -> Result<usize> {
        let mut n = 0usize;
        check(unsafe { sys::dlv_tokenizer_vocab_size(self.ptr.as_ptr(), &mut n) })?;
        Ok(n)
    }
}

impl Drop for Tokenizer<'_> {
    fn drop(&mut self) {
        if self.owned {
            unsafe { sys::dlv_tokenizer_free(self.ptr.as_ptr()) }
        }
    }
}

// Handles print as their type name and C address.
macro_rules! debug_handle {
    ($($t:ident $(<$l:lifetime>)?),* $(,)?) => {$(
        impl fmt::Debug for $t $(<$l>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:p})", stringify!($t), self.ptr_for_debug())
            }
        }
    )*};
}

impl ModelOptions {
    fn ptr_for_debug(&self) -> *const () {
        self.ptr.as_ptr() as *const ()
    }
}
impl SessionOptions {
    fn ptr_for_debug(&self) -> *const () {
        self.ptr.as_ptr() as *const ()
    }
}
impl PreprocessOptions {
    fn ptr_for_debug(&self) -> *const () {
        self.ptr.as_ptr() as *const ()
    }
}
impl Image {
    fn ptr_for_debug(&self) -> *const () {
        self.ptr.as_ptr() as *const ()
    }
}
impl Batch<'_> {
    fn ptr_for_debug(&self) -> *const () {
        self.ptr.as_ptr() as *const ()
    }
}
impl Tokenizer<'_> {
    fn ptr_for_debug(&self) -> *const () {
        self.ptr.as_ptr() as *const ()
    }
}
impl CancelHandle<'_> {
    fn ptr_for_debug(&self) -> *const () {
        self.handle.ptr.as_ptr() as *const ()
    }
}

debug_handle!(
    ModelOptions,
    SessionOptions,
    PreprocessOptions,
    Image,
    Batch<'_>,
    Tokenizer<'_>,
    CancelHandle<'_>
);

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>() {}
    fn is_sync<T: Sync>() {}

    #[test]
    fn thread_traits() {
        is_send::<Model>();
        is_sync::<Model>();
        is_send::<Session<'static>>();
        is_send::<CancelHandle<'static>>();
        is_sync::<CancelHandle<'static>>();
        is_send::<Image>();
        is_sync::<Image>();
        is_send::<Tokenizer<'static>>();
        is_sync::<Tokenizer<'static>>();
        is_send::<Batch<'static>>();
    }

    #[test]
    fn status_names_come_from_the_library() {
        assert_eq!(Status::from_code(sys::DLV_E_IO), Status::Io);
        assert_eq!(Status::Io.code(), sys::DLV_E_IO);
        assert!(!Status::Io.name().is_empty());
        assert_eq!(Status::Other(12345).name(), "unknown status");
    }

    #[test]
    fn rgb_buffer_sizes_are_checked_before_the_call() {
        let e = Image::from_rgb(&[0u8; 11], 2, 2, 6).err().unwrap();
        assert_eq!(e.status(), Status::InvalidArg);
        assert!(e.message().contains("needs 12"), "{}", e);
        assert!(Image::from_rgb(&[0u8; 12], 2, 2, 6).is_ok());
        // The last row needs only 3 * width bytes of a wider stride.
        assert!(Image::from_rgb(&[0u8; 14], 2, 2, 8).is_ok());
        assert!(Image::from_rgb(&[0u8; 13], 2, 2, 8).is_err());
    }
}
