//! A small safe wrapper over `stacklstm-sys`: a [`Model`] and the [`Session`]s that run it,
//! each freed on drop, and every failed call as an [`Error`] carrying the library's status
//! and its message (`slstm_last_error`), which names the argument at fault.
//!
//! Soundness rests on the library's own checks: every buffer goes in as a slice whose length
//! is passed as the element count, and the library refuses (`SHAPE_MISMATCH`) any count that
//! differs from what the shapes need, before touching a byte. Rust's borrows keep outputs
//! from overlapping inputs, so an in-place state update (`final_state == initial_state`,
//! which the C API allows) is not expressible here.
//!
//! Threads: a `Model` is immutable and may be shared (`Send + Sync`); a `Session` serves one
//! thread at a time, which `&mut self` on its calls enforces (`Send`, not `Sync`).
use std::ffi::CStr;
use std::fmt;
use std::os::raw::c_char;
use std::ptr::{self, NonNull};

pub use stacklstm_sys as sys;

/// A failed call: the library's status code and the message it left for this thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    status: sys::slstm_status,
    message: String,
}

impl Error {
    /// The error of the call that just returned `status` on this thread.
    fn last(status: sys::slstm_status) -> Error {
        // slstm_last_error_copy: the FFI-friendly form (no borrowed pointer to hold on to).
        let len = unsafe { sys::slstm_last_error_copy(ptr::null_mut(), 0) };
        let mut buf = vec![0u8; len + 1];
        unsafe { sys::slstm_last_error_copy(buf.as_mut_ptr() as *mut c_char, buf.len()) };
        buf.truncate(len);
        Error {
            status,
            message: String::from_utf8_lossy(&buf).into_owned(),
        }
    }

    /// An argument refused by this wrapper before any call (e.g. a size that does not fit
    /// the C type); it carries the status the library gives for the same kind of mistake.
    fn invalid(message: String) -> Error {
        Error {
            status: sys::SLSTM_ERR_INVALID_ARGUMENT,
            message,
        }
    }

    /// The `slstm_status` value (`SLSTM_ERR_*`).
    pub fn status(&self) -> sys::slstm_status {
        self.status
    }

    /// The library's message: which argument was wrong and why.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The library's short text for the status (`slstm_status_string`).
    pub fn status_text(&self) -> String {
        static_str(unsafe { sys::slstm_status_string(self.status) })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status_text(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

fn check(status: sys::slstm_status) -> Result<()> {
    if status == sys::SLSTM_OK {
        Ok(())
    } else {
        Err(Error::last(status))
    }
}

/// A copy of one of the library's static, NUL-terminated strings.
fn static_str(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// "major.minor.patch" of the library loaded at run time.
pub fn version() -> String {
    static_str(unsafe { sys::slstm_version_string() })
}

/// Where a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Cuda,
}

impl Backend {
    fn raw(self) -> sys::slstm_backend {
        match self {
            Backend::Cpu => sys::SLSTM_BACKEND_CPU,
            Backend::Cuda => sys::SLSTM_BACKEND_CUDA,
        }
    }
}

/// The c or h block of one layer in a packed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatePart {
    C,
    H,
}

/// Layout of a forward call's input and output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// [batch, time, ...]: `tf.nn.dynamic_rnn`'s default.
    BatchMajor,
    /// [time, batch, ...].
    TimeMajor,
}

/// A model's architecture: input depth and one hidden size per layer.
#[derive(Clone, Copy, Debug)]
pub struct Architecture<'a> {
    pub input_size: i64,
    pub hidden_sizes: &'a [i64],
    /// Added to the f gate (TF's BasicLSTMCell default: 1.0).
    pub forget_bias: f32,
}

impl<'a> Architecture<'a> {
    pub fn new(input_size: i64, hidden_sizes: &'a [i64]) -> Self {
        Architecture {
            input_size,
            hidden_sizes,
            forget_bias: 1.0,
        }
    }

    fn raw(&self) -> Result<sys::slstm_model_config> {
        let num_layers = i32::try_from(self.hidden_sizes.len()).map_err(|_| {
            Error::invalid(format!(
                "hidden_sizes: {} layers, at most {}",
                self.hidden_sizes.len(),
                sys::SLSTM_MAX_LAYERS
            ))
        })?;
        let mut config = std::mem::MaybeUninit::<sys::slstm_model_config>::zeroed();
        unsafe {
            sys::slstm_model_config_init_sized(
                config.as_mut_ptr(),
                std::mem::size_of::<sys::slstm_model_config>(),
            )
        };
        let mut config = unsafe { config.assume_init() };
        config.input_size = self.input_size;
        config.num_layers = num_layers;
        config.hidden_sizes = self.hidden_sizes.as_ptr();
        config.forget_bias = self.forget_bias;
        Ok(config)
    }
}

/// An immutable stacked-LSTM model (weights copied into the library).
#[derive(Debug)]
pub struct Model {
    raw: NonNull<sys::slstm_model>,
}

// The library promises that a model may be used from any number of threads at once.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Model {
    /// Seeded pseudo-random weights, uniform in [-scale, scale] (scale 0: 1/sqrt(H) per
    /// layer); the same seed gives the same weights on every platform.
    pub fn random(arch: &Architecture<'_>, seed: u64, scale: f32) -> Result<Model> {
        let config = arch.raw()?;
        let mut raw = ptr::null_mut();
        check(unsafe { sys::slstm_model_create_random(&config, seed, scale, &mut raw) })?;
        Ok(Model {
            raw: NonNull::new(raw).expect("slstm_model_create_random returned NULL"),
        })
    }

    fn ptr(&self) -> *const sys::slstm_model {
        self.raw.as_ptr()
    }

    pub fn num_layers(&self) -> Result<i32> {
        let mut out = 0;
        check(unsafe { sys::slstm_model_num_layers(self.ptr(), &mut out) })?;
        Ok(out)
    }

    pub fn input_size(&self) -> Result<i64> {
        let mut out = 0;
        check(unsafe { sys::slstm_model_input_size(self.ptr(), &mut out) })?;
        Ok(out)
    }

    /// Hidden size of `layer` (0-based); OUT_OF_RANGE past the last layer.
    pub fn hidden_size(&self, layer: i32) -> Result<i64> {
        let mut out = 0;
        check(unsafe { sys::slstm_model_hidden_size(self.ptr(), layer, &mut out) })?;
        Ok(out)
    }

    /// The constant added to every layer's f gate.
    pub fn forget_bias(&self) -> Result<f32> {
        let mut out = 0.0;
        check(unsafe { sys::slstm_model_forget_bias(self.ptr(), &mut out) })?;
        Ok(out)
    }

    /// Floats in a packed state (c_0, h_0, c_1, h_1, ...) for `batch` rows.
    pub fn state_count(&self, batch: i64) -> Result<usize> {
        let mut out = 0;
        check(unsafe { sys::slstm_model_state_count(self.ptr(), batch, &mut out) })?;
        Ok(out)
    }

    /// Offset, in floats, of layer `layer`'s c or h block ([batch, H_layer]) in a packed state.
    pub fn state_offset(&self, batch: i64, layer: i32, part: StatePart) -> Result<usize> {
        let part = match part {
            StatePart::C => sys::SLSTM_STATE_C,
            StatePart::H => sys::SLSTM_STATE_H,
        };
        let mut out = 0;
        check(unsafe { sys::slstm_model_state_offset(self.ptr(), batch, layer, part, &mut out) })?;
        Ok(out)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        unsafe { sys::slstm_model_destroy(self.raw.as_ptr()) }
    }
}

/// What a session is created for: the backend and the largest batch and time of its calls.
#[derive(Clone, Copy, Debug)]
pub struct SessionOptions {
    pub backend: Backend,
    pub max_batch: i64,
    pub max_time: i64,
    /// CPU worker threads; 0: one per CPU this thread may run on.
    pub num_threads: i32,
}

impl SessionOptions {
    /// CPU, one worker per CPU.
    pub fn new(max_batch: i64, max_time: i64) -> Self {
        SessionOptions {
            backend: Backend::Cpu,
            max_batch,
            max_time,
            num_threads: 0,
        }
    }
}

/// A model bound to a backend with its workspace. Keeps its model alive in the library, so
/// the `Model` may be dropped first.
#[derive(Debug)]
pub struct Session {
    raw: NonNull<sys::slstm_session>,
}

// A session may move between threads; `&mut self` on its calls keeps it to one at a time.
unsafe impl Send for Session {}

/// The arguments of [`Session::forward`]; start from [`Forward::new`] and set the rest.
#[derive(Debug)]
pub struct Forward<'a> {
    pub layout: Layout,
    pub batch: i64,
    pub time: i64,
    /// [batch, time, D] (or [time, batch, D]).
    pub input: &'a [f32],
    /// `batch` lengths in [0, time]; None: every row runs `time` steps.
    pub sequence_lengths: Option<&'a [i32]>,
    /// A packed state; None: zeros.
    pub initial_state: Option<&'a [f32]>,
    /// [batch, time, H_last] (or [time, batch, H_last]); None: not written.
    pub output: Option<&'a mut [f32]>,
    /// The packed state after the last step; None: not written.
    pub final_state: Option<&'a mut [f32]>,
}

impl<'a> Forward<'a> {
    /// Batch-major, no lengths, zero initial state, no outputs.
    pub fn new(batch: i64, time: i64, input: &'a [f32]) -> Self {
        Forward {
            layout: Layout::BatchMajor,
            batch,
            time,
            input,
            sequence_lengths: None,
            initial_state: None,
            output: None,
            final_state: None,
        }
    }
}

fn in_ptr<T>(s: Option<&[T]>) -> (*const T, usize) {
    s.map_or((ptr::null(), 0), |s| (s.as_ptr(), s.len()))
}

fn out_ptr<T>(s: Option<&mut [T]>) -> (*mut T, usize) {
    s.map_or((ptr::null_mut(), 0), |s| (s.as_mut_ptr(), s.len()))
}

impl Session {
    pub fn new(model: &Model, options: &SessionOptions) -> Result<Session> {
        let mut raw_options = std::mem::MaybeUninit::<sys::slstm_session_options>::zeroed();
        unsafe {
            sys::slstm_session_options_init_sized(
                raw_options.as_mut_ptr(),
                std::mem::size_of::<sys::slstm_session_options>(),
            )
        };
        let mut raw_options = unsafe { raw_options.assume_init() };
        raw_options.backend = options.backend.raw();
        raw_options.max_batch = options.max_batch;
        raw_options.max_time = options.max_time;
        raw_options.num_threads = options.num_threads;
        let mut raw = ptr::null_mut();
        check(unsafe { sys::slstm_session_create(model.ptr(), &raw_options, &mut raw) })?;
        Ok(Session {
            raw: NonNull::new(raw).expect("slstm_session_create returned NULL"),
        })
    }

    /// Runs the stack over a sequence (`tf.nn.dynamic_rnn`). On error nothing is written.
    pub fn forward(&mut self, args: Forward<'_>) -> Result<()> {
        let mut raw = std::mem::MaybeUninit::<sys::slstm_forward_args>::zeroed();
        unsafe {
            sys::slstm_forward_args_init_sized(
                raw.as_mut_ptr(),
                std::mem::size_of::<sys::slstm_forward_args>(),
            )
        };
        let mut raw = unsafe { raw.assume_init() };
        raw.layout = match args.layout {
            Layout::BatchMajor => sys::SLSTM_BATCH_MAJOR,
            Layout::TimeMajor => sys::SLSTM_TIME_MAJOR,
        };
        raw.batch = args.batch;
        raw.time = args.time;
        raw.input = args.input.as_ptr();
        raw.input_count = args.input.len();
        (raw.sequence_lengths, raw.sequence_lengths_count) = in_ptr(args.sequence_lengths);
        (raw.initial_state, raw.initial_state_count) = in_ptr(args.initial_state);
        (raw.output, raw.output_count) = out_ptr(args.output);
        (raw.final_state, raw.final_state_count) = out_ptr(args.final_state);
        check(unsafe { sys::slstm_session_forward(self.raw.as_ptr(), &raw) })
    }

    /// One step (`MultiRNNCell.__call__`): input [batch, D], a packed state (None: zeros),
    /// the last layer's new h [batch, H_last] into `output` and the new packed state into
    /// `new_state` (either may be None).
    pub fn step(
        &mut self,
        batch: i64,
        input: &[f32],
        state: Option<&[f32]>,
        output: Option<&mut [f32]>,
        new_state: Option<&mut [f32]>,
    ) -> Result<()> {
        let (state, state_count) = in_ptr(state);
        let (output, output_count) = out_ptr(output);
        let (new_state, new_state_count) = out_ptr(new_state);
        check(unsafe {
            sys::slstm_session_step(
                self.raw.as_ptr(),
                batch,
                input.as_ptr(),
                input.len(),
                state,
                state_count,
                output,
                output_count,
                new_state,
                new_state_count,
            )
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        unsafe { sys::slstm_session_destroy(self.raw.as_ptr()) }
    }
}
