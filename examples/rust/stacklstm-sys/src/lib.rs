//! Raw declarations of libstacklstm's C ABI, written by hand from
//! `include/stacklstm/stacklstm.h` as of libstacklstm 0.2 (no bindgen, no dependencies).
//! Everything here is `unsafe` and follows the header's rules; the `stacklstm` crate next to
//! this one is the safe wrapper. Not bound: the ONNX node check (`slstm_onnx_*`).
//!
//! ABI notes, from the header:
//! * Every enum is a C `int` on the wire: here a `c_int` alias with one constant per value,
//!   so a value added by a newer library (e.g. a new status) is still representable.
//! * The versioned structs (`slstm_model_config`, `slstm_session_options`,
//!   `slstm_forward_args`) begin with `struct_size`. Fill them with the `*_init_sized`
//!   function and `size_of` the struct declared here (the 0.2 layout, and
//!   `slstm_forward_args.data_type` of 0.7, which took the 0.2 layout's trailing padding);
//!   a newer library accepts that size and gives the fields this layout lacks their
//!   defaults. (The 0.1-era
//!   `slstm_X_init` functions, which write only the first published layout, are left out.)
//! * The last-error text is per thread: read it on the thread whose call failed.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_void};

// ---- Status codes ------------------------------------------------------------------------
pub type slstm_status = c_int;
pub const SLSTM_OK: slstm_status = 0;
pub const SLSTM_ERR_INVALID_ARGUMENT: slstm_status = 1;
pub const SLSTM_ERR_SHAPE_MISMATCH: slstm_status = 2;
pub const SLSTM_ERR_OUT_OF_RANGE: slstm_status = 3;
pub const SLSTM_ERR_SIZE_OVERFLOW: slstm_status = 4;
pub const SLSTM_ERR_OUT_OF_MEMORY: slstm_status = 5;
pub const SLSTM_ERR_BACKEND_UNAVAILABLE: slstm_status = 6;
pub const SLSTM_ERR_UNSUPPORTED: slstm_status = 7;
pub const SLSTM_ERR_BACKEND_FAILURE: slstm_status = 8;
pub const SLSTM_ERR_ALIASING: slstm_status = 9;
pub const SLSTM_ERR_INTERNAL: slstm_status = 10;
pub const SLSTM_ERR_BUSY: slstm_status = 11;

// ---- Enums -------------------------------------------------------------------------------
pub type slstm_data_type = c_int;
pub const SLSTM_DATA_F32: slstm_data_type = 0;
pub const SLSTM_DATA_BF16: slstm_data_type = 1;
pub const SLSTM_DATA_F16: slstm_data_type = 2;

pub type slstm_backend = c_int;
pub const SLSTM_BACKEND_CPU: slstm_backend = 0;
pub const SLSTM_BACKEND_CUDA: slstm_backend = 1;

pub type slstm_weight_format = c_int;
pub const SLSTM_FORMAT_CANONICAL: slstm_weight_format = 0;
pub const SLSTM_FORMAT_TF: slstm_weight_format = 1;
pub const SLSTM_FORMAT_PYTORCH: slstm_weight_format = 2;
pub const SLSTM_FORMAT_KERAS: slstm_weight_format = 3;
pub const SLSTM_FORMAT_KERAS_CUDNN: slstm_weight_format = 4;
pub const SLSTM_FORMAT_ONNX: slstm_weight_format = 5;
pub const SLSTM_FORMAT_CUDNN: slstm_weight_format = 6;

pub type slstm_state_part = c_int;
pub const SLSTM_STATE_C: slstm_state_part = 0;
pub const SLSTM_STATE_H: slstm_state_part = 1;

pub type slstm_cpu_path = c_int;
pub const SLSTM_CPU_PATH_AUTO: slstm_cpu_path = 0;
pub const SLSTM_CPU_PATH_REFERENCE: slstm_cpu_path = 1;
pub const SLSTM_CPU_PATH_FAST: slstm_cpu_path = 2;

pub type slstm_describe_format = c_int;
pub const SLSTM_DESCRIBE_TEXT: slstm_describe_format = 0;
pub const SLSTM_DESCRIBE_JSON: slstm_describe_format = 1;

pub type slstm_layout = c_int;
pub const SLSTM_BATCH_MAJOR: slstm_layout = 0;
pub const SLSTM_TIME_MAJOR: slstm_layout = 1;

pub type slstm_memory = c_int;
pub const SLSTM_MEMORY_HOST: slstm_memory = 0;
pub const SLSTM_MEMORY_DEVICE: slstm_memory = 1;

// ---- Limits ------------------------------------------------------------------------------
pub const SLSTM_MAX_DIMS: usize = 4;
pub const SLSTM_MAX_LAYERS: i32 = 100_000;
pub const SLSTM_MAX_EXTENT: i64 = 1 << 40;
pub const SLSTM_MODEL_FILE_MAX_HEADER: u64 = 100_000_000;

// ---- Opaque handles ----------------------------------------------------------------------
/// `slstm_model`: only ever behind a pointer.
#[repr(C)]
pub struct slstm_model {
    _private: [u8; 0],
}
/// `slstm_session`: only ever behind a pointer.
#[repr(C)]
pub struct slstm_session {
    _private: [u8; 0],
}

// ---- Structs -----------------------------------------------------------------------------
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct slstm_tensor {
    pub data: *const f32,
    pub ndim: i32,
    pub shape: [i64; SLSTM_MAX_DIMS],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct slstm_tensor_out {
    pub data: *mut f32,
    pub ndim: i32,
    pub shape: [i64; SLSTM_MAX_DIMS],
}

/// Versioned: fill with `slstm_model_config_init_sized(&mut c, size_of::<slstm_model_config>())`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct slstm_model_config {
    pub struct_size: u32,
    pub input_size: i64,
    pub num_layers: i32,
    pub hidden_sizes: *const i64,
    pub forget_bias: f32,
}

/// Versioned: fill with `slstm_session_options_init_sized`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct slstm_session_options {
    pub struct_size: u32,
    pub backend: slstm_backend,
    pub max_batch: i64,
    pub max_time: i64,
    pub cpu_path: slstm_cpu_path,
    pub num_threads: i32,
    pub device: i32,
    pub allow_tf32: i32,
    pub cuda_stream: *mut c_void,
    pub config: *const c_char,
}

/// Versioned: fill with `slstm_forward_args_init_sized`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct slstm_forward_args {
    pub struct_size: u32,
    pub layout: slstm_layout,
    pub batch: i64,
    pub time: i64,
    pub input: *const f32,
    pub input_count: usize,
    pub sequence_lengths: *const i32,
    pub sequence_lengths_count: usize,
    pub initial_state: *const f32,
    pub initial_state_count: usize,
    pub output: *mut f32,
    pub output_count: usize,
    pub final_state: *mut f32,
    pub final_state_count: usize,
    pub memory: slstm_memory,
    /// Since 0.7. It sits where the 0.2 layout had padding, so the struct's size did not
    /// change and the library reads it from any caller: declared (and set, 0 = f32 by the
    /// init) so that it is never padding of undefined value.
    pub data_type: slstm_data_type,
}

extern "C" {
    // Errors and version.
    pub fn slstm_status_string(status: slstm_status) -> *const c_char;
    pub fn slstm_last_error() -> *const c_char;
    pub fn slstm_last_error_copy(buf: *mut c_char, size: usize) -> usize;
    pub fn slstm_version_number() -> u32;
    pub fn slstm_version_string() -> *const c_char;
    pub fn slstm_backend_available(backend: slstm_backend) -> slstm_status;

    // Models.
    pub fn slstm_format_tensors_per_layer(
        format: slstm_weight_format,
        out_count: *mut i32,
    ) -> slstm_status;
    pub fn slstm_model_config_init_sized(config: *mut slstm_model_config, struct_size: usize);
    pub fn slstm_model_create(
        config: *const slstm_model_config,
        format: slstm_weight_format,
        tensors: *const slstm_tensor,
        num_tensors: usize,
        out_model: *mut *mut slstm_model,
    ) -> slstm_status;
    pub fn slstm_model_create_random(
        config: *const slstm_model_config,
        seed: u64,
        scale: f32,
        out_model: *mut *mut slstm_model,
    ) -> slstm_status;
    pub fn slstm_model_destroy(model: *mut slstm_model);
    pub fn slstm_model_export(
        model: *const slstm_model,
        format: slstm_weight_format,
        tensors: *const slstm_tensor_out,
        num_tensors: usize,
    ) -> slstm_status;
    pub fn slstm_model_num_layers(model: *const slstm_model, out: *mut i32) -> slstm_status;
    pub fn slstm_model_input_size(model: *const slstm_model, out: *mut i64) -> slstm_status;
    pub fn slstm_model_hidden_size(
        model: *const slstm_model,
        layer: i32,
        out: *mut i64,
    ) -> slstm_status;
    pub fn slstm_model_forget_bias(model: *const slstm_model, out: *mut f32) -> slstm_status;
    pub fn slstm_model_state_count(
        model: *const slstm_model,
        batch: i64,
        out: *mut usize,
    ) -> slstm_status;
    pub fn slstm_model_state_offset(
        model: *const slstm_model,
        batch: i64,
        layer: i32,
        part: slstm_state_part,
        out: *mut usize,
    ) -> slstm_status;

    // Sessions.
    pub fn slstm_session_options_init_sized(
        options: *mut slstm_session_options,
        struct_size: usize,
    );
    pub fn slstm_session_create(
        model: *const slstm_model,
        options: *const slstm_session_options,
        out_session: *mut *mut slstm_session,
    ) -> slstm_status;
    pub fn slstm_session_destroy(session: *mut slstm_session);
    pub fn slstm_session_backend(
        session: *const slstm_session,
        out: *mut slstm_backend,
    ) -> slstm_status;
    pub fn slstm_session_describe(
        session: *const slstm_session,
        format: slstm_describe_format,
        buf: *mut c_char,
        size: usize,
        out_length: *mut usize,
    ) -> slstm_status;
    pub fn slstm_forward_args_init_sized(args: *mut slstm_forward_args, struct_size: usize);
    pub fn slstm_session_forward(
        session: *mut slstm_session,
        args: *const slstm_forward_args,
    ) -> slstm_status;
    pub fn slstm_session_step(
        session: *mut slstm_session,
        batch: i64,
        input: *const f32,
        input_count: usize,
        state: *const f32,
        state_count: usize,
        output: *mut f32,
        output_count: usize,
        new_state: *mut f32,
        new_state_count: usize,
    ) -> slstm_status;

    // Model files (safetensors).
    pub fn slstm_model_file_size(
        model: *const slstm_model,
        source_layout: *const c_char,
        out_size: *mut usize,
    ) -> slstm_status;
    pub fn slstm_model_save_memory(
        model: *const slstm_model,
        source_layout: *const c_char,
        buf: *mut c_void,
        capacity: usize,
        out_size: *mut usize,
    ) -> slstm_status;
    pub fn slstm_model_save_file(
        model: *const slstm_model,
        path: *const c_char,
        source_layout: *const c_char,
    ) -> slstm_status;
    pub fn slstm_model_load_memory(
        data: *const c_void,
        size: usize,
        out_model: *mut *mut slstm_model,
    ) -> slstm_status;
    pub fn slstm_model_load_file(
        path: *const c_char,
        out_model: *mut *mut slstm_model,
    ) -> slstm_status;
}
