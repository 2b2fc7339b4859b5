//! cargo run --example score -- MODEL_DIR IMAGE TEXT...
//! Prints the cosine of IMAGE with each TEXT.

use disclvlm::{Image, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: score MODEL_DIR IMAGE TEXT...");
        std::process::exit(2);
    }
    let model = Model::load(&args[0])?;
    let mut session = model.session()?;
    let images = session.encode_images(&[&Image::from_file(&args[1])?])?;
    let texts = session.encode_texts(&args[2..])?;
    let scores = session.score(&images, &texts)?;
    for (text, score) in args[2..].iter().zip(scores.row(0)) {
        println!("{:.4}  {}", score, text);
    }
    Ok(())
}
