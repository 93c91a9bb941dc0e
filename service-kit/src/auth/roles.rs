//! Roles and what each may do: the role matrix, in one place.

use schemas::MovementKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who a user is to the system. See ARCHITECTURE.md for the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, every store.
    Admin,
    /// Own stores: movements, reads, reports; catalog read.
    Manager,
    /// Own stores: movements and reads.
    Staff,
    /// A point-of-sale device: sales for its store.
    Pos,
    /// Read everything, write nothing.
    Analyst,
}

impl Role {
    pub const ALL: [Self; 5] = [
        Self::Admin,
        Self::Manager,
        Self::Staff,
        Self::Pos,
        Self::Analyst,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::Staff => "staff",
            Self::Pos => "pos",
            Self::Analyst => "analyst",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// Whether a user of this role may be given "all stores" (an empty store list).
    pub const fn may_span_all_stores(self) -> bool {
        matches!(self, Self::Admin | Self::Analyst)
    }

    /// The role matrix.
    pub const fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Self::Admin => true,
            Self::Manager => matches!(
                permission,
                CatalogRead
                    | StoreSettingsWrite
                    | MovementWrite
                    | InventoryRead
                    | ReportRead
                    | PurchaseOrderWrite
                    | PurchaseOrderReceive
                    | PurchaseOrderRead
            ),
            Self::Staff => matches!(
                permission,
                CatalogRead
                    | MovementWrite
                    | InventoryRead
                    | PurchaseOrderReceive
                    | PurchaseOrderRead
            ),
            Self::Pos => matches!(permission, CatalogRead | MovementWrite),
            Self::Analyst => matches!(
                permission,
                CatalogRead | InventoryRead | ReportRead | PurchaseOrderRead
            ),
        }
    }

    /// Which kinds of movement this role may post (with `MovementWrite`).
    pub const fn may_post(self, kind: MovementKind) -> bool {
        match self {
            // Undoing a movement is a manager's (or an admin's) decision.
            Self::Admin | Self::Manager => !matches!(kind, MovementKind::Unknown),
            Self::Staff => !matches!(kind, MovementKind::Unknown | MovementKind::Void),
            // A till sells and takes customers' returns; stock is moved otherwise in the back office.
            Self::Pos => matches!(kind, MovementKind::Sale | MovementKind::Return),
            Self::Analyst => false,
        }
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    CatalogRead,
    CatalogWrite,
    /// A product's reorder point and selling price in a store (the token's stores).
    StoreSettingsWrite,
    UserAdmin,
    MovementWrite,
    InventoryRead,
    ReportRead,
    AuditRead,
    /// Create, edit, submit and cancel a store's purchase orders.
    PurchaseOrderWrite,
    /// Approve or reject a submitted purchase order.
    PurchaseOrderApprove,
    /// Record a delivery against an approved purchase order.
    PurchaseOrderReceive,
    PurchaseOrderRead,
}
