//! The safe wrapper's contract, each test one behaviour: errors carry the library's status
//! and message, wrong buffers are refused without writes, and every argument reaches the
//! library in its place (layout, sequence lengths, initial state, step's buffers).
use stacklstm::sys;
use stacklstm::{Architecture, Forward, Layout, Model, Session, SessionOptions, StatePart};

const B: usize = 3;
const T: usize = 4;
const D: usize = 5;
const HIDDEN: [i64; 2] = [6, 7];
const H_LAST: usize = 7;

fn model() -> Model {
    Model::random(&Architecture::new(D as i64, &HIDDEN), 7, 0.0).unwrap()
}

fn session(model: &Model) -> Session {
    Session::new(model, &SessionOptions::new(B as i64, T as i64)).unwrap()
}

/// Deterministic values in [-1, 1).
fn values(n: usize, salt: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|k| ((k.wrapping_mul(2_654_435_761) ^ salt) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_refused_call_returns_the_status_and_the_message_naming_the_argument() {
    let err = Model::random(&Architecture::new(D as i64, &[6, 0]), 7, 0.0).unwrap_err();
    assert_eq!(err.status(), sys::SLSTM_ERR_INVALID_ARGUMENT);
    assert!(
        err.message().contains("hidden_sizes"),
        "message: {}",
        err.message()
    );
    assert_eq!(
        err.to_string(),
        format!("{}: {}", err.status_text(), err.message())
    );
}

#[test]
fn the_architecture_reaches_the_model() {
    let arch = Architecture {
        forget_bias: 0.25,
        ..Architecture::new(D as i64, &HIDDEN)
    };
    let model = Model::random(&arch, 7, 0.0).unwrap();
    assert_eq!(model.input_size().unwrap(), D as i64);
    assert_eq!(model.num_layers().unwrap(), 2);
    assert_eq!(model.hidden_size(0).unwrap(), HIDDEN[0]);
    assert_eq!(model.hidden_size(1).unwrap(), HIDDEN[1]);
    assert_eq!(model.forget_bias().unwrap(), 0.25);
    let err = model.hidden_size(2).unwrap_err();
    assert_eq!(err.status(), sys::SLSTM_ERR_OUT_OF_RANGE);
}

#[test]
fn a_buffer_of_the_wrong_length_is_refused_and_nothing_is_written() {
    let model = model();
    let mut session = session(&model);
    let x = values(B * T * D, 1);
    let mut out = vec![0f32; B * T * H_LAST - 1];
    let sentinel = f32::from_bits(0x7fc0_1234);
    let mut state = vec![sentinel; model.state_count(B as i64).unwrap()];
    let err = session
        .forward(Forward {
            output: Some(&mut out),
            final_state: Some(&mut state),
            ..Forward::new(B as i64, T as i64, &x)
        })
        .unwrap_err();
    assert_eq!(err.status(), sys::SLSTM_ERR_SHAPE_MISMATCH);
    assert!(
        err.message().contains("output"),
        "message: {}",
        err.message()
    );
    assert!(state.iter().all(|v| v.to_bits() == sentinel.to_bits()));
}

#[test]
fn time_major_output_is_the_batch_major_output_transposed() {
    let model = model();
    let mut session = session(&model);
    let x = values(B * T * D, 2);
    let mut x_tm = vec![0f32; x.len()];
    for b in 0..B {
        for t in 0..T {
            x_tm[(t * B + b) * D..][..D].copy_from_slice(&x[(b * T + t) * D..][..D]);
        }
    }
    let mut out = vec![0f32; B * T * H_LAST];
    let mut out_tm = vec![0f32; B * T * H_LAST];
    session
        .forward(Forward {
            output: Some(&mut out),
            ..Forward::new(B as i64, T as i64, &x)
        })
        .unwrap();
    session
        .forward(Forward {
            layout: Layout::TimeMajor,
            output: Some(&mut out_tm),
            ..Forward::new(B as i64, T as i64, &x_tm)
        })
        .unwrap();
    for b in 0..B {
        for t in 0..T {
            assert_eq!(
                bits(&out[(b * T + t) * H_LAST..][..H_LAST]),
                bits(&out_tm[(t * B + b) * H_LAST..][..H_LAST])
            );
        }
    }
}

#[test]
fn a_row_of_length_zero_keeps_its_initial_state_and_outputs_zeros() {
    let model = model();
    let mut session = session(&model);
    let x = values(B * T * D, 3);
    let n_state = model.state_count(B as i64).unwrap();
    let initial = values(n_state, 4);
    let lengths = [T as i32, 0, 2];
    let mut out = vec![f32::NAN; B * T * H_LAST];
    let mut state = vec![f32::NAN; n_state];
    session
        .forward(Forward {
            sequence_lengths: Some(&lengths),
            initial_state: Some(&initial),
            output: Some(&mut out),
            final_state: Some(&mut state),
            ..Forward::new(B as i64, T as i64, &x)
        })
        .unwrap();
    assert!(out[T * H_LAST..2 * T * H_LAST]
        .iter()
        .all(|v| v.to_bits() == 0));
    for (layer, h) in HIDDEN.iter().enumerate() {
        for part in [StatePart::C, StatePart::H] {
            let block = model.state_offset(B as i64, layer as i32, part).unwrap();
            let row1 = block + *h as usize..block + 2 * *h as usize;
            assert_eq!(bits(&state[row1.clone()]), bits(&initial[row1]));
        }
    }
    // Row 0 ran all T steps: its state is not the initial one.
    assert_ne!(
        bits(&state[..HIDDEN[0] as usize]),
        bits(&initial[..HIDDEN[0] as usize])
    );
}

#[test]
fn a_step_gives_what_a_forward_call_of_one_step_gives() {
    let model = model();
    let mut session = session(&model);
    let x = values(B * D, 5);
    let n_state = model.state_count(B as i64).unwrap();
    let state0 = values(n_state, 6);
    let (mut out, mut state) = (vec![0f32; B * H_LAST], vec![0f32; n_state]);
    session
        .forward(Forward {
            initial_state: Some(&state0),
            output: Some(&mut out),
            final_state: Some(&mut state),
            ..Forward::new(B as i64, 1, &x)
        })
        .unwrap();
    let (mut step_out, mut step_state) = (vec![0f32; B * H_LAST], vec![0f32; n_state]);
    session
        .step(
            B as i64,
            &x,
            Some(&state0),
            Some(&mut step_out),
            Some(&mut step_state),
        )
        .unwrap();
    assert_eq!(bits(&step_out), bits(&out));
    assert_eq!(bits(&step_state), bits(&state));
}

#[test]
fn a_session_keeps_working_after_its_model_is_dropped() {
    let model = model();
    let mut session = session(&model);
    drop(model);
    let x = values(B * T * D, 7);
    let mut out = vec![0f32; B * T * H_LAST];
    session
        .forward(Forward {
            output: Some(&mut out),
            ..Forward::new(B as i64, T as i64, &x)
        })
        .unwrap();
    assert!(out.iter().any(|v| *v != 0.0));
}

#[test]
fn a_session_runs_on_another_thread_and_a_model_is_shared() {
    let model = std::sync::Arc::new(model());
    let shared = std::sync::Arc::clone(&model);
    let mut session = session(&model);
    let count = std::thread::spawn(move || {
        let x = values(B * D, 8);
        session.step(B as i64, &x, None, None, None).unwrap();
        shared.state_count(B as i64).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(count, model.state_count(B as i64).unwrap());
}

#[test]
fn the_forward_args_struct_declares_every_byte_the_library_reads() {
    // The C header's slstm_forward_args (LP64): data_type (0.7) at offset 108, in what was the
    // 0.2 layout's trailing padding, and sizeof 112. A byte the library reads must be a field
    // here, never padding of undefined value.
    assert_eq!(std::mem::offset_of!(sys::slstm_forward_args, memory), 104);
    assert_eq!(std::mem::offset_of!(sys::slstm_forward_args, data_type), 108);
    assert_eq!(std::mem::size_of::<sys::slstm_forward_args>(), 112);
}
