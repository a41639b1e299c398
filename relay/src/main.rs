fn main() {
    println!("surge-relay: under construction");
}
