//! Examples of embedding mswitch; see the `[[example]]` targets (`cargo run -p mswitch-examples --example submit`).
