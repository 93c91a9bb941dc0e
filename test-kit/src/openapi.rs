//! An OpenAPI document's own consistency, beside what each service's tests assert of it.

/// Checks an OpenAPI document: it parses as OpenAPI 3.1 (`oas3`), every `$ref` points at
/// something in the document, and every operation answers something. Panics naming the
/// fault.
pub fn assert_valid_openapi(text: &str) {
    if let Err(error) = oas3::from_json(text) {
        panic!("the OpenAPI document does not parse as OpenAPI 3.1: {error}");
    }
    let document: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON: {error}"));
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    for reference in references {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{reference} points outside the document"));
        assert!(
            document.pointer(pointer).is_some(),
            "{reference} points at nothing"
        );
    }
    let paths = document["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("the document has no paths"));
    for (path, item) in paths {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let responses = operation["responses"].as_object();
            assert!(
                responses.is_some_and(|responses| !responses.is_empty()),
                "{method} {path} describes no response"
            );
        }
    }
}

fn collect_references(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(reference)) = map.get("$ref") {
                into.push(reference.clone());
            }
            map.values()
                .for_each(|value| collect_references(value, into));
        }
        serde_json::Value::Array(items) => items
            .iter()
            .for_each(|value| collect_references(value, into)),
        _ => {}
    }
}
