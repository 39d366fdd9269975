// `sqlx::migrate!` embeds the migrations at compile time but only notices edits to files it
// already knows; this makes a new migration file trigger a rebuild too.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
