//! The value schemas in the local stack's schema registry (Apicurio Registry, through its
//! Confluent-compatible API): registered under `<topic>-value` in version order, kept
//! FULL_TRANSITIVE, and a change that breaks compatibility refused with the registry's
//! reason — what `bazaar-topics ensure` does and CI runs.

use schemas::Topics;
use schemas::topics::{ALL, MOVEMENTS};
use service_kit::Service;
use service_kit::schema_registry::{COMPATIBILITY, RegistryError, SchemaRegistry};
use service_kit::settings::KafkaSettings;
use uuid::Uuid;

fn registry() -> SchemaRegistry {
    let settings = KafkaSettings::from_lookup(Service::Processors, &|var| std::env::var(var).ok())
        .expect("Kafka settings");
    SchemaRegistry::new(&settings.schema_registry).expect("a registry client")
}

/// Avro JSON as a value: the registry gives back what it was given, compacted and with its
/// keys in another order.
fn json(schema: &str) -> serde_json::Value {
    serde_json::from_str(schema).unwrap()
}

/// `schema` (Avro JSON of a record) with `field` appended to its fields.
fn with_field(schema: &str, field: serde_json::Value) -> String {
    let mut record: serde_json::Value = serde_json::from_str(schema).unwrap();
    record["fields"].as_array_mut().unwrap().push(field);
    record.to_string()
}

#[tokio::test]
async fn ensure_registers_every_value_schema_in_order_and_once() {
    let registry = registry();
    let topics = Topics::new(format!("test-{}.", Uuid::new_v4().simple()));
    let first = registry
        .ensure_value_schemas(&topics)
        .await
        .unwrap_or_else(|error| panic!("{error}; run `make up` first"));
    let declared: Vec<_> = ALL.iter().filter(|spec| spec.value.is_some()).collect();
    assert_eq!(first.len(), declared.len());
    for (spec, outcome) in declared.into_iter().zip(&first) {
        let value = spec.value.unwrap();
        assert_eq!(outcome.subject, topics.value_subject(*spec));
        assert_eq!(outcome.registered, value.earlier.len() + 1);
        let versions = registry.versions(&outcome.subject).await.unwrap();
        let held: Vec<_> = versions
            .iter()
            .map(|version| json(&version.schema))
            .collect();
        let declared: Vec<_> = value.versions().map(json).collect();
        assert!(held == declared, "{} holds other versions", outcome.subject);
        assert_eq!(versions.last().map(|version| version.id), Some(outcome.id));
        assert_eq!(
            registry
                .schema(outcome.id)
                .await
                .unwrap()
                .as_deref()
                .map(json),
            Some(json(value.current))
        );
        assert_eq!(
            registry
                .compatibility(&outcome.subject)
                .await
                .unwrap()
                .as_deref(),
            Some(COMPATIBILITY)
        );
    }
    let again = registry.ensure_value_schemas(&topics).await.unwrap();
    for (before, after) in first.iter().zip(&again) {
        assert_eq!(after.registered, 0, "{}", after.subject);
        assert_eq!(after.id, before.id, "{}", after.subject);
    }
    for outcome in first {
        registry.delete_subject(&outcome.subject).await.unwrap();
    }
}

#[tokio::test]
async fn a_new_optional_field_is_accepted_and_a_breaking_change_refused_with_the_reason() {
    let registry = registry();
    let subject = format!("test-{}.scratch-value", Uuid::new_v4().simple());
    let movement = MOVEMENTS.value.unwrap();
    registry
        .ensure_subject(&subject, movement.versions())
        .await
        .unwrap_or_else(|error| panic!("{error}; run `make up` first"));

    // A new optional field: old records read with its default, old readers skip it.
    let optional = with_field(
        movement.current,
        serde_json::json!({"name": "loyalty_card", "type": ["null", "string"], "default": null}),
    );
    let mut versions: Vec<&str> = movement.versions().collect();
    versions.push(&optional);
    let accepted = registry.ensure_subject(&subject, versions).await.unwrap();
    assert_eq!(accepted.registered, 1);

    // A field without a default: records already on the topic cannot be read with it.
    let required = with_field(
        &optional,
        serde_json::json!({"name": "till_number", "type": "long"}),
    );
    match registry.register(&subject, &required).await {
        Err(RegistryError::Incompatible {
            subject: named,
            reason,
        }) => {
            assert_eq!(named, subject);
            assert!(reason.contains("till_number"), "{reason}");
        }
        other => panic!("a field without a default was not refused: {other:?}"),
    }
    // A changed type is refused too, and neither became a version.
    let retyped = movement.current.replace(
        r#"{"name": "quantity", "type": "long""#,
        r#"{"name": "quantity", "type": "string""#,
    );
    assert_ne!(
        retyped, movement.current,
        "the quantity field's declaration moved"
    );
    assert!(matches!(
        registry.register(&subject, &retyped).await,
        Err(RegistryError::Incompatible { .. })
    ));
    let versions = registry.versions(&subject).await.unwrap();
    assert_eq!(versions.len(), movement.earlier.len() + 2);
    assert_eq!(
        versions.last().map(|version| json(&version.schema)),
        Some(json(&optional))
    );
    registry.delete_subject(&subject).await.unwrap();
}
