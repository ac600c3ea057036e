//! `seeds <fixtures folder> <corpus root>`: writes the seed corpora (`voxprompt_fuzz::seeds`).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, fixtures, root] = &args[..] else {
        eprintln!("usage: seeds <fixtures folder> <corpus root>");
        std::process::exit(2);
    };
    for (target, n) in voxprompt_fuzz::seeds::write_all(fixtures.as_ref(), root.as_ref()) {
        println!("{root}/{target}: {n} seeds");
    }
}
