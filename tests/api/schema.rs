//! `graphql/schema.graphql` is the served schema: this test fails when they differ.

#[test]
fn the_served_schema_matches_graphql_schema_graphql() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/graphql/schema.graphql");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let served = procedo::api::schema_sdl();
    if committed != served {
        let first = committed
            .lines()
            .zip(served.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(served.lines().count()));
        panic!(
            "graphql/schema.graphql differs from the served schema (first difference at line {}: {:?} vs {:?}).\n\
             Regenerate it with: cargo run -- api schema > graphql/schema.graphql",
            first + 1,
            committed.lines().nth(first),
            served.lines().nth(first)
        );
    }
}
