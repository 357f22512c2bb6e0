fn main() {
    eprintln!("flowkey: command line not wired yet");
    std::process::exit(2);
}
