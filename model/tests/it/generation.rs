//! The generation API on the shipped weights, on Burn's CPU backend and every GPU backend the
//! machine has (or `VIDPLAY_TEST_DEVICES` names): progress per step, cancellation between steps,
//! determinism, i2v shapes. wgpu on lavapipe is left to the CLI's one wgpu test: its shader
//! compilation costs minutes on a CPU.

use crate::common::devices;
use burn::prelude::Device;
use model::builtin::pipeline::{BuiltinModel, GenerationRequest};
use model::generate::GenerateError;
use std::cell::Cell;

#[test]
fn generation_api() {
    for (label, device) in devices() {
        eprintln!("generation API on {label}");
        generation_api_on(&device);
    }
}

fn generation_api_on(device: &Device) {
    let model = BuiltinModel::shipped(device).expect("shipped weights load");
    let req = GenerationRequest {
        prompt: "a blue ball bouncing in the desert".into(),
        steps: 4,
        seed: 11,
        ..Default::default()
    };

    // Progress after every step, frames of the requested shape.
    let mut seen = Vec::new();
    let a = model.generate(&req, None, &mut |p| seen.push((p.step, p.total)), &|| false).unwrap();
    assert_eq!(seen, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
    assert_eq!(a.frames.len(), model.config().frames);
    assert_eq!(a.frames[0].dimensions(), (256, 256));
    assert_eq!(a.native_frames[0].dimensions(), (32, 32));

    // Same request and seed: identical frames. Another seed: different frames.
    let b = model.generate(&req, None, &mut |_| {}, &|| false).unwrap();
    assert_eq!(a.native_frames, b.native_frames);
    let c = model.generate(&GenerationRequest { seed: 12, ..req.clone() }, None, &mut |_| {}, &|| false).unwrap();
    assert_ne!(a.native_frames, c.native_frames);

    // Cancelled between steps: stops after the step during which it was asked.
    let steps_done = Cell::new(0);
    let err = model.generate(&req, None, &mut |p| steps_done.set(p.step), &|| steps_done.get() >= 2).unwrap_err();
    assert_eq!(err, GenerateError::Cancelled);
    assert_eq!(steps_done.get(), 2);

    // Fewer frames are spread over the whole clip; image-to-video keeps the input's size.
    let few =
        model.generate(&GenerationRequest { frames: Some(4), ..req.clone() }, None, &mut |_| {}, &|| false).unwrap();
    assert_eq!(few.native_frames.len(), 4);
    assert_eq!(few.native_frames[0], a.native_frames[0]);
    assert_eq!(few.native_frames[3], a.native_frames[15]);
    let photo = image::RgbImage::from_fn(120, 80, |x, y| image::Rgb([x as u8 * 2, y as u8 * 3, 90]));
    let i2v = model
        .generate(
            &GenerationRequest { prompt: "camera pans left".into(), ..req.clone() },
            Some(&photo),
            &mut |_| {},
            &|| false,
        )
        .unwrap();
    // The motion model moves the picture itself, at its own resolution.
    assert_eq!(i2v.native_input.as_ref(), Some(&photo));
    assert_eq!(i2v.frames.len(), 16);
    assert_eq!(i2v.frames[0], photo);
    assert!(i2v.frames.iter().all(|f| f.dimensions() == (120, 80)));
    assert_ne!(i2v.frames[15], photo, "the camera moved");
    let again = model
        .generate(
            &GenerationRequest { prompt: "camera pans left".into(), ..req.clone() },
            Some(&photo),
            &mut |_| {},
            &|| false,
        )
        .unwrap();
    assert_eq!(again.frames, i2v.frames, "same request and seed, same frames");
    let larger = model
        .generate(
            &GenerationRequest { prompt: "zoom in".into(), image_long_side: Some(240), ..req.clone() },
            Some(&photo),
            &mut |_| {},
            &|| false,
        )
        .unwrap();
    assert_eq!(larger.frames[3].dimensions(), (240, 160), "--size sets the longest side");

    // Bad requests are errors, not panics.
    for bad in [
        GenerationRequest { prompt: String::new(), ..req.clone() },
        GenerationRequest { steps: 0, ..req.clone() },
        GenerationRequest { frames: Some(99), ..req.clone() },
        GenerationRequest { guidance: -1.0, ..req.clone() },
        GenerationRequest { prompt: "x".repeat(5000), ..req.clone() },
        GenerationRequest { image_long_side: Some(5000), ..req.clone() },
    ] {
        assert!(matches!(model.generate(&bad, None, &mut |_| {}, &|| false), Err(GenerateError::InvalidRequest(_))));
    }
}
