//! Who may move a purchase order from which state: the pure rules, checked before any
//! write. The role decides first (`403`), then the state (`409`).

use schemas::purchase_orders::OrderState::{self, *};
use service_kit::auth::{Permission, Role};
use service_kit::problem::ApiError;

/// What a caller does to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Change the note or the lines.
    Edit,
    Submit,
    Approve,
    Reject,
    Receive,
    Cancel,
}

impl Action {
    pub const ALL: [Self; 6] = [
        Self::Edit,
        Self::Submit,
        Self::Approve,
        Self::Reject,
        Self::Receive,
        Self::Cancel,
    ];

    /// The audit log's action.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Edit => "update",
            Self::Submit => "submit",
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Receive => "receive",
            Self::Cancel => "cancel",
        }
    }

    /// Managers create, edit, submit and cancel their stores' orders; only admins approve
    /// or reject; the store's staff may also receive deliveries.
    pub const fn permission(self) -> Permission {
        match self {
            Self::Edit | Self::Submit | Self::Cancel => Permission::PurchaseOrderWrite,
            Self::Approve | Self::Reject => Permission::PurchaseOrderApprove,
            Self::Receive => Permission::PurchaseOrderReceive,
        }
    }

    /// The states the action starts from.
    pub const fn from(self) -> &'static [OrderState] {
        match self {
            Self::Edit | Self::Submit => &[Draft],
            Self::Approve | Self::Reject => &[Submitted],
            Self::Receive => &[Approved, PartiallyReceived],
            Self::Cancel => &[Draft, Submitted, Approved, PartiallyReceived],
        }
    }

    /// May `role` take this action on an order in `state`?
    pub fn check(self, role: Role, state: OrderState) -> Result<(), ApiError> {
        if !role.allows(self.permission()) {
            return Err(ApiError::forbidden(
                "role_forbidden",
                format!(
                    "role {} may not {} purchase orders",
                    role.as_str(),
                    self.verb()
                ),
            ));
        }
        if !self.from().contains(&state) {
            return Err(ApiError::Conflict {
                code: "invalid_transition",
                detail: format!(
                    "a {} purchase order cannot be {}; {} needs {}",
                    state.as_str(),
                    self.past(),
                    self.verb(),
                    self.from()
                        .iter()
                        .map(|state| state.as_str())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
                field: Some("state"),
            });
        }
        Ok(())
    }

    const fn verb(self) -> &'static str {
        match self {
            Self::Edit => "edit",
            Self::Submit => "submit",
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Receive => "receive",
            Self::Cancel => "cancel",
        }
    }

    const fn past(self) -> &'static str {
        match self {
            Self::Edit => "edited",
            Self::Submit => "submitted",
            Self::Approve => "approved",
            Self::Reject => "rejected",
            Self::Receive => "received",
            Self::Cancel => "cancelled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_decide_and_analysts_and_pos_devices_change_nothing() {
        for action in Action::ALL {
            let allowed: Vec<Role> = Role::ALL
                .into_iter()
                .filter(|role| action.check(*role, action.from()[0]).is_ok())
                .collect();
            let expected = match action {
                Action::Approve | Action::Reject => vec![Role::Admin],
                Action::Receive => vec![Role::Admin, Role::Manager, Role::Staff],
                Action::Edit | Action::Submit | Action::Cancel => {
                    vec![Role::Admin, Role::Manager]
                }
            };
            assert_eq!(allowed, expected, "{action:?}");
        }
    }

    #[test]
    fn a_closed_order_takes_no_action() {
        for state in OrderState::ALL
            .into_iter()
            .filter(|state| state.is_closed())
        {
            for action in Action::ALL {
                let refused = action.check(Role::Admin, state).unwrap_err();
                assert_eq!(refused.code(), "invalid_transition");
            }
        }
    }

    #[test]
    fn an_order_is_received_only_once_approved() {
        for state in [Draft, Submitted] {
            assert!(Action::Receive.check(Role::Admin, state).is_err());
        }
        for state in [Approved, PartiallyReceived] {
            assert!(Action::Receive.check(Role::Staff, state).is_ok());
        }
    }
}
