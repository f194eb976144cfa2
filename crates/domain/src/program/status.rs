//! The registration lifecycle and the small enums stored with a registration.
//!
//! Each enum has a stable lowercase string (`as_str`/`FromStr`) because that string is
//! what the database, the HTTP API and the reports hold; renaming a variant must not
//! change stored data.

pub use crate::names::ParseEnumError;
use crate::string_enum;

string_enum! {
    /// Where a registration is in the process of docs/program.md §3.
    Status, "status" {
        /// Recorded by MobiFone (hotline, outbound call or staff for the fanpage).
        Registered = "registered",
        /// On the list handed to Vinmec HP, who will call the customer.
        SentToVinmec = "sent_to_vinmec",
        /// Vinmec booked date, time and method (phone/video) and told the customer.
        AppointmentBooked = "appointment_booked",
        /// The doctor consulted; Vinmec's report is on the queue entry.
        Consulted = "consulted",
        /// MobiFone's satisfaction survey call is done. Terminal.
        Surveyed = "surveyed",
        /// The customer withdrew or was withdrawn. Terminal; does not free a place.
        Cancelled = "cancelled",
        /// Vinmec could not reach the customer (or they missed the appointment).
        Unreachable = "unreachable",
    }
}

string_enum! {
    /// docs/program.md §1: group 1 received the SMS; group 2 came through the fanpage.
    Group, "group" {
        One = "one",
        Two = "two",
    }
}

impl Group {
    /// The number stored in the database (1 or 2), as the plan numbers the groups.
    pub fn number(self) -> i64 {
        match self {
            Group::One => 1,
            Group::Two => 2,
        }
    }

    pub fn from_number(n: i64) -> Option<Group> {
        match n {
            1 => Some(Group::One),
            2 => Some(Group::Two),
            _ => None,
        }
    }
}

string_enum! {
    /// How the registration was taken (docs/program.md §2c).
    Channel, "channel" {
        /// The subscriber called 9090 (group 1, way 1).
        Hotline = "hotline",
        /// MobiFone called out from 9090 (group 1, way 2).
        OutboundCall = "outbound_call",
        /// Staff entered it from a fanpage conversation (group 2).
        Fanpage = "fanpage",
    }
}

/// Whether a registration of `group` may come through `channel`: group 1 registers
/// on 9090 calls, group 2 through the fanpage — and nowhere else, per §2c.
pub fn channel_allowed(group: Group, channel: Channel) -> bool {
    matches!(
        (group, channel),
        (Group::One, Channel::Hotline | Channel::OutboundCall) | (Group::Two, Channel::Fanpage)
    )
}

/// The lifecycle's allowed edges:
///
/// | from | to |
/// |---|---|
/// | Registered | SentToVinmec, Cancelled |
/// | SentToVinmec | AppointmentBooked, Unreachable, Cancelled |
/// | Unreachable | SentToVinmec (Vinmec retries), Cancelled |
/// | AppointmentBooked | Consulted, Unreachable (missed the appointment), Cancelled |
/// | Consulted | Surveyed |
/// | Surveyed, Cancelled | — (terminal) |
///
/// No self-edges: an event row records a change, and rescheduling an appointment is a
/// change of the Vinmec queue entry, not of the status. A consulted customer cannot be
/// cancelled: the place has been used and the survey still applies.
pub fn can_transition(from: Status, to: Status) -> bool {
    use Status::*;
    matches!(
        (from, to),
        (Registered, SentToVinmec | Cancelled)
            | (SentToVinmec, AppointmentBooked | Unreachable | Cancelled)
            | (Unreachable, SentToVinmec | Cancelled)
            | (AppointmentBooked, Consulted | Unreachable | Cancelled)
            | (Consulted, Surveyed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn allowed_edges_exactly() {
        let allowed = [
            (Registered, SentToVinmec),
            (Registered, Cancelled),
            (SentToVinmec, AppointmentBooked),
            (SentToVinmec, Unreachable),
            (SentToVinmec, Cancelled),
            (Unreachable, SentToVinmec),
            (Unreachable, Cancelled),
            (AppointmentBooked, Consulted),
            (AppointmentBooked, Unreachable),
            (AppointmentBooked, Cancelled),
            (Consulted, Surveyed),
        ];
        for &from in Status::ALL {
            for &to in Status::ALL {
                assert_eq!(
                    can_transition(from, to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        for &to in Status::ALL {
            assert!(!can_transition(Cancelled, to));
            assert!(!can_transition(Surveyed, to));
        }
    }

    #[test]
    fn strings_round_trip() {
        for &s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        for &c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>(), Ok(c));
        }
        for &g in Group::ALL {
            assert_eq!(Group::from_number(g.number()), Some(g));
            assert_eq!(g.as_str().parse::<Group>(), Ok(g));
        }
        let cases = [
            (Channel::Hotline, "hotline"),
            (Channel::OutboundCall, "outbound_call"),
            (Channel::Fanpage, "fanpage"),
        ];
        for (c, s) in cases {
            assert_eq!(c.as_str(), s);
            assert_eq!(c.to_string(), s);
        }
        // The names the API reads and writes (its JSON is checked in `tongdai::api`).
        assert_eq!(Channel::NAMES, ["hotline", "outbound_call", "fanpage"]);
        let statuses: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(Status::NAMES, statuses);
        let groups: Vec<&str> = Group::ALL.iter().map(|g| g.as_str()).collect();
        assert_eq!(Group::NAMES, groups);
        assert_eq!(
            "Hotline".parse::<Channel>(),
            Err(ParseEnumError::new("channel", "Hotline"))
        );
        assert_eq!(Group::from_number(3), None);
        assert_eq!(SentToVinmec.as_str(), "sent_to_vinmec");
    }

    #[test]
    fn channels_per_group() {
        let cases = [
            (Group::One, Channel::Hotline, true),
            (Group::One, Channel::OutboundCall, true),
            (Group::One, Channel::Fanpage, false),
            (Group::Two, Channel::Fanpage, true),
            (Group::Two, Channel::Hotline, false),
            (Group::Two, Channel::OutboundCall, false),
        ];
        for (g, c, want) in cases {
            assert_eq!(channel_allowed(g, c), want, "{g} {c}");
        }
    }
}
