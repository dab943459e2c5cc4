//! The seed scenario of examples/seed_demo.c through the safe wrapper: 3 layers
//! [100, 200, 300], batch 10, input 128, time 7, model seed 42, inputs from the C library's
//! srand(7)/rand() exactly as seed_demo makes them, on the CPU backend. Prints the same lines
//! as examples/seed_checksum.c (shapes, the bitwise final-state checks, values, FNV-1a 64
//! checksums, a refused call), which examples/check_foreign.sh compares. Exit 0 when both
//! checks hold and the bad call is refused with OUT_OF_RANGE.
use std::os::raw::{c_int, c_uint};
use std::process::ExitCode;

use stacklstm::{Architecture, Forward, Model, Session, SessionOptions, StatePart};

// seed_demo.c draws its inputs from the C library's generator; so does this program, to get
// the very same floats. RAND_MAX is 2^31 - 1 in glibc and musl.
extern "C" {
    fn srand(seed: c_uint);
    fn rand() -> c_int;
}
const RAND_MAX: c_int = 0x7fff_ffff;

fn c_rand() -> f32 {
    unsafe { rand() as f32 / RAND_MAX as f32 }
}

/// FNV-1a 64 over each float's bits as 4 little-endian bytes.
fn fnv1a64(values: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for byte in v.to_bits().to_le_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("seed_checksum: {}", e);
            ExitCode::FAILURE
        }
    }
}

fn run() -> stacklstm::Result<bool> {
    let (b, d, t) = (10i64, 128i64, 7i64);
    let model = Model::random(&Architecture::new(d, &[100, 200, 300]), 42, 0.0)?;
    let layers = model.num_layers()?;
    let hidden: Vec<i64> = (0..layers)
        .map(|l| model.hidden_size(l))
        .collect::<Result<_, _>>()?;
    let h_last = hidden[hidden.len() - 1];
    let (bu, tu, hu) = (b as usize, t as usize, h_last as usize);

    println!("libstacklstm {}", stacklstm::version());
    println!(
        "seed scenario: {} layers [{}, {}, {}], batch {}, input {}, time {}, model seed 42, CPU",
        layers,
        hidden[0],
        hidden[1],
        hidden[2],
        b,
        model.input_size()?,
        t
    );

    let mut session = Session::new(&model, &SessionOptions::new(b, t))?;
    let n_state = model.state_count(b)?;
    unsafe { srand(7) };
    let x: Vec<f32> = (0..b * t * d).map(|_| c_rand() * 2.0 - 1.0).collect();
    let state0: Vec<f32> = (0..n_state).map(|_| c_rand() - 0.5).collect();
    let mut out = vec![0f32; bu * tu * hu];
    let mut state = vec![0f32; n_state];
    session.forward(Forward {
        output: Some(&mut out),
        final_state: Some(&mut state),
        ..Forward::new(b, t, &x)
    })?;

    println!("inputs        shape ({}, {}, {})", b, t, d);
    println!("outputs       shape ({}, {}, {})", b, t, h_last);
    for (l, h) in hidden.iter().enumerate() {
        println!("states[{}].c   shape ({}, {})", l, b, h);
        println!("states[{}].h   shape ({}, {})", l, b, h);
    }
    let h_off = model.state_offset(b, layers - 1, StatePart::H)?;
    let last_ok = (0..bu).all(|row| {
        let last_step = (row * tu + tu - 1) * hu;
        same_bits(&state[h_off + row * hu..][..hu], &out[last_step..][..hu])
    });
    println!(
        "final_state[-1].h == outputs[:, -1, :]: {} (bitwise)",
        if last_ok { "true" } else { "FALSE" }
    );

    let mut step_out = vec![0f32; bu * hu];
    let mut step_state = vec![0f32; n_state];
    session.step(
        b,
        &x[..bu * d as usize],
        Some(&state0),
        Some(&mut step_out),
        Some(&mut step_state),
    )?;
    println!(
        "step: outputs shape ({}, {}); states[0].h shape ({}, {}); states[{}].h shape ({}, {})",
        b,
        h_last,
        b,
        hidden[0],
        layers - 1,
        b,
        h_last
    );
    let step_ok = same_bits(&step_state[h_off..h_off + bu * hu], &step_out);
    println!(
        "step: states[-1].h == outputs: {} (bitwise)",
        if step_ok { "true" } else { "FALSE" }
    );

    let first = &out[(tu - 1) * hu..][..4];
    println!(
        "outputs[0, -1, 0:4]: {:.6} {:.6} {:.6} {:.6}",
        first[0] as f64, first[1] as f64, first[2] as f64, first[3] as f64
    );
    println!("fnv1a64 outputs     {:016x}", fnv1a64(&out));
    println!("fnv1a64 final_state {:016x}", fnv1a64(&state));
    println!("fnv1a64 step output {:016x}", fnv1a64(&step_out));
    println!("fnv1a64 step state  {:016x}", fnv1a64(&step_state));

    // A call the library must refuse: batch above the session's max_batch.
    let refused = session.forward(Forward {
        output: Some(&mut out),
        final_state: Some(&mut state),
        ..Forward::new(b + 1, t, &x)
    });
    let refused_ok = match &refused {
        Err(e) => {
            println!("refused: forward with batch {}: {}", b + 1, e);
            e.status() == stacklstm::sys::SLSTM_ERR_OUT_OF_RANGE
        }
        Ok(()) => {
            println!("refused: forward with batch {}: accepted", b + 1);
            false
        }
    };
    Ok(last_ok && step_ok && refused_ok)
}
