//! Several vantage points, one verdict per site. Each controller checks
//! both sites from its own network and publishes what it sees; a site
//! counts as down (or healthy) only when at least `quorum` of the live
//! vantage points see it so. A vantage point that sees both sites down
//! sees nothing at all (its own network is cut): its view counts for
//! neither site, so it can never cause a failover.

use serde::{Deserialize, Serialize};

use super::SiteHealth;

/// What one vantage point sees of the two sites, primary first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VantageView {
    pub node: String,
    pub health: [SiteHealth; 2],
    /// Its own sentence for each site, such as "primary down (0/2 checks
    /// up; health: HTTP 503)".
    pub detail: [String; 2],
}

impl VantageView {
    /// Sees both sites down: its own network, not the sites, is the
    /// likelier cause.
    pub fn blind(&self) -> bool {
        self.health == [SiteHealth::Down, SiteHealth::Down]
    }
}

/// The verdict on one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    pub health: SiteHealth,
    /// Why, naming the vantage points.
    pub text: String,
}

/// The verdict on each site (primary first, named `names`) from the live
/// vantage points' `views`.
pub fn agree(views: &[VantageView], quorum: usize, names: [&str; 2]) -> [Agreed; 2] {
    [0, 1].map(|i| {
        let counted: Vec<&VantageView> = views.iter().filter(|v| !v.blind()).collect();
        let count = |health| counted.iter().filter(|v| v.health[i] == health).count();
        let (down, healthy) = (count(SiteHealth::Down), count(SiteHealth::Healthy));
        let health = if down >= quorum {
            SiteHealth::Down
        } else if healthy >= quorum {
            SiteHealth::Healthy
        } else {
            SiteHealth::Degraded
        };
        let seen: Vec<String> = views
            .iter()
            .map(|v| {
                if v.blind() {
                    format!("{}: sees no site at all, not counted", v.node)
                } else {
                    format!("{}: {}", v.node, v.detail[i])
                }
            })
            .collect();
        let verdict = match health {
            SiteHealth::Down => format!("down for {down} of {} vantage points", views.len()),
            SiteHealth::Healthy => {
                format!("healthy for {healthy} of {} vantage points", views.len())
            }
            SiteHealth::Degraded => format!(
                "no quorum of {quorum}: {down} see it down, {healthy} healthy, of {} vantage points",
                views.len()
            ),
        };
        Agreed {
            health,
            text: format!(
                "{} {} [{}]",
                names[i],
                verdict,
                if seen.is_empty() {
                    "no vantage point".to_string()
                } else {
                    seen.join("; ")
                }
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use SiteHealth::*;

    fn word(health: SiteHealth) -> &'static str {
        match health {
            SiteHealth::Healthy => "healthy",
            SiteHealth::Down => "down",
            SiteHealth::Degraded => "degraded",
        }
    }

    fn view(node: &str, primary: SiteHealth, secondary: SiteHealth) -> VantageView {
        VantageView {
            node: node.into(),
            health: [primary, secondary],
            detail: [word(primary).into(), word(secondary).into()],
        }
    }

    #[test]
    fn a_quorum_of_vantage_points_decides_and_a_minority_does_not() {
        let names = ["primary", "secondary"];
        let agreed = agree(
            &[
                view("ns1", Down, Healthy),
                view("ns2", Down, Healthy),
                view("w", Healthy, Healthy),
            ],
            2,
            names,
        );
        assert_eq!(agreed[0].health, Down, "{}", agreed[0].text);
        assert_eq!(agreed[1].health, Healthy);
        assert!(
            agreed[0].text.contains("down for 2 of 3"),
            "{}",
            agreed[0].text
        );

        // One vantage point alone sees the primary down: no verdict.
        let agreed = agree(
            &[
                view("ns1", Healthy, Healthy),
                view("ns2", Down, Healthy),
                view("w", Healthy, Healthy),
            ],
            2,
            names,
        );
        assert_eq!(agreed[0].health, Healthy, "{}", agreed[0].text);
        assert!(agreed[0].text.contains("ns2: down"), "{}", agreed[0].text);

        // Two of three live, one of them blind: nothing is down.
        let agreed = agree(
            &[view("ns2", Down, Down), view("w", Down, Healthy)],
            2,
            names,
        );
        assert_eq!(agreed[0].health, Degraded, "{}", agreed[0].text);
        assert!(
            agreed[0].text.contains("ns2: sees no site at all"),
            "{}",
            agreed[0].text
        );

        // The primary site's node died with the primary: the other two
        // still make the quorum.
        let agreed = agree(
            &[view("ns2", Down, Healthy), view("w", Down, Healthy)],
            2,
            names,
        );
        assert_eq!(agreed[0].health, Down);
        assert_eq!(agreed[1].health, Healthy);
    }
}
