//! ingest's own metrics (the HTTP ones come from service-kit). Labels are bounded: kind,
//! outcome and the problem's stable code — never ids or SKUs.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use schemas::MovementKind;

#[derive(Debug, Clone)]
pub struct MovementMetrics {
    /// `bazaar_movements_total{kind, outcome="accepted"|"refused", reason}`.
    pub movements: IntCounterVec,
    /// Time from handing a record to the producer to the broker's acknowledgement.
    pub produce_seconds: Histogram,
    /// Movement requests being handled now.
    pub in_flight: IntGauge,
    /// Lines per batch request.
    pub batch_size: Histogram,
    /// `movements{kind, outcome="accepted"}` for each known kind, looked up once: the
    /// hot path counts without hashing label values.
    accepted: Vec<(MovementKind, IntCounter)>,
}

impl MovementMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let movements = IntCounterVec::new(
            Opts::new(
                "bazaar_movements_total",
                "Movements accepted (on the topic) or refused, by kind and reason.",
            ),
            &["kind", "outcome", "reason"],
        )?;
        let accepted = MovementKind::KNOWN
            .iter()
            .map(|kind| {
                let counter =
                    movements.get_metric_with_label_values(&[kind.as_str(), "accepted", "none"])?;
                Ok((*kind, counter))
            })
            .collect::<Result<_, prometheus::Error>>()?;
        let metrics = Self {
            movements,
            accepted,
            produce_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "bazaar_movement_produce_duration_seconds",
                    "Time from producing a movement to the broker's acknowledgement.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            in_flight: IntGauge::new(
                "bazaar_movement_requests_in_flight",
                "Movement requests being handled.",
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("bazaar_movement_batch_size", "Lines per batch request.")
                    .buckets(vec![1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0]),
            )?,
        };
        registry.register(Box::new(metrics.movements.clone()))?;
        registry.register(Box::new(metrics.produce_seconds.clone()))?;
        registry.register(Box::new(metrics.in_flight.clone()))?;
        registry.register(Box::new(metrics.batch_size.clone()))?;
        Ok(metrics)
    }

    pub fn accepted(&self, kind: MovementKind) {
        match self.accepted.iter().find(|(known, _)| *known == kind) {
            Some((_, counter)) => counter.inc(),
            None => self
                .movements
                .with_label_values(&[kind.as_str(), "accepted", "none"])
                .inc(),
        }
    }

    pub fn refused(&self, kind: Option<MovementKind>, reason: &str) {
        let kind = kind.map_or("unknown", |kind| kind.as_str());
        self.movements
            .with_label_values(&[kind, "refused", reason])
            .inc();
    }

    /// Counts a request in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }
}

/// `bazaar_purchase_order_receipts_unpublished`: receipts recorded more than the grace
/// period ago whose stock-ins the broker has not acknowledged, as last looked (every few
/// seconds). Above zero for minutes: deliveries are in Postgres but not in the stock.
pub fn unpublished_receipts(registry: &Registry) -> Result<IntGauge, prometheus::Error> {
    let gauge = IntGauge::new(
        "bazaar_purchase_order_receipts_unpublished",
        "Receipts recorded more than 10 s ago whose stock-ins are not on the movements topic yet.",
    )?;
    registry.register(Box::new(gauge.clone()))?;
    Ok(gauge)
}

#[derive(Debug)]
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
