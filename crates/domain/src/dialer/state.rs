//! The lifecycle of a campaign, as operators drive it (`tongdai campaign start|pause|
//! resume|stop`) and as the store persists it.

use std::fmt;

/// Lifecycle of a campaign: draft → running ⇄ paused → stopped; running/paused →
/// completed when no contact is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CampaignState {
    /// Created, not started.
    Draft,
    /// Dialling.
    Running,
    /// No new dials; calls in progress finish and are recorded. `resume` continues.
    Paused,
    /// Ended by an operator; no new dials ever. Calls in progress are still recorded.
    Stopped,
    /// Every contact is done.
    Completed,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Stopped => "stopped",
            CampaignState::Completed => "completed",
        }
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
