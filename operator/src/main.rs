fn main() {
    println!("surge-operator: under construction");
}
