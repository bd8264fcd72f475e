//! What each kind of certificate looks like: validity window, key usages, extended key usages
//! and subject alternative names. The final names are written by [`crate::tbs`].

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::DnsName;
use time::OffsetDateTime;

use crate::error::{PkiError, Result};

/// How far in the past not-before is put, so that a machine whose clock lags the issuer's by
/// up to this much still accepts a certificate issued just now.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60 * 60);

/// The validity window of a certificate about to be signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
}

impl Window {
    /// From [`CLOCK_SKEW`] ago until `validity` from now, in whole seconds (what X.509 stores).
    pub(crate) fn starting_now(validity: Duration) -> Result<Window> {
        if validity.is_zero() {
            return Err(PkiError::Validity { reason: "the validity is zero".into() });
        }
        let too_long = || PkiError::Validity { reason: format!("{validity:?} is too long") };
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("0 is a valid nanosecond");
        let validity = time::Duration::try_from(validity).map_err(|_| too_long())?;
        let not_after = now.checked_add(validity).filter(|t| t.year() <= 9999).ok_or_else(too_long)?;
        let skew = time::Duration::try_from(CLOCK_SKEW).expect("one hour fits");
        Ok(Window { not_before: now - skew, not_after })
    }

    /// The same window, ending no later than `limit` (the issuer's not-after): a certificate
    /// cannot usefully outlive the CA that vouches for it.
    pub(crate) fn capped_at(self, limit: OffsetDateTime) -> Result<Window> {
        let not_after = self.not_after.min(limit);
        if not_after <= OffsetDateTime::now_utc() {
            return Err(PkiError::Validity { reason: format!("the CA expired at {limit}") });
        }
        Ok(Window { not_after, ..self })
    }

    fn apply(self, params: &mut CertificateParams) {
        params.not_before = self.not_before;
        params.not_after = self.not_after;
    }
}

/// A self-signed CA: `CA:true` with path length 0, keyCertSign + cRLSign + digitalSignature.
pub(crate) fn ca(common_name: &str, window: Window) -> Result<CertificateParams> {
    check_name("common name", common_name)?;
    let mut params = CertificateParams::default();
    window.apply(&mut params);
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

/// A server certificate: one SAN per host, serverAuth + clientAuth.
pub(crate) fn server(common_name: &str, hosts: &[String], window: Window) -> Result<CertificateParams> {
    if hosts.is_empty() {
        return Err(PkiError::NoHosts);
    }
    let mut params = leaf(common_name, window);
    params.subject_alt_names = hosts.iter().map(|h| subject_alt_name(h)).collect::<Result<_>>()?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// A client certificate: clientAuth only.
pub(crate) fn client(user: &str, window: Window) -> CertificateParams {
    let mut params = leaf(user, window);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// What all end-entity certificates share. [`crate::tbs`] writes the final subject; the CN
/// given to rcgen keeps the subject non-empty, which keeps the SAN extension non-critical.
fn leaf(common_name: &str, window: Window) -> CertificateParams {
    let mut params = CertificateParams::default();
    window.apply(&mut params);
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    // ECDSA keys only sign; keyEncipherment would be meaningless.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params
}

/// An IP literal becomes an IP SAN; anything else must be a DNS name, optionally with one
/// leading wildcard label.
fn subject_alt_name(host: &str) -> Result<SanType> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = |reason| PkiError::InvalidHost { host: host.to_string(), reason };
    let base = host.strip_prefix("*.").unwrap_or(host);
    DnsName::try_from(base).map_err(|_| invalid("neither an IP address nor a DNS name"))?;
    let name = host.to_string().try_into().map_err(|_| invalid("not an ASCII DNS name"))?;
    Ok(SanType::DnsName(name))
}

/// Names (CN, user, group) must be non-empty: an empty user would be indistinguishable from
/// "no user" to whoever reads the certificate.
pub(crate) fn check_name(what: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(PkiError::InvalidName { what, value: value.to_string(), reason: "empty" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_starts_in_the_past_and_is_capped() {
        let w = Window::starting_now(Duration::from_secs(86_400)).expect("window");
        assert_eq!(w.not_after - w.not_before, time::Duration::seconds(86_400 + 3_600));
        assert!(w.not_before < OffsetDateTime::now_utc());
        let limit = w.not_after - time::Duration::seconds(600);
        assert_eq!(w.capped_at(limit).expect("capped").not_after, limit);
        let expired = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        assert!(matches!(w.capped_at(expired), Err(PkiError::Validity { .. })));
    }

    #[test]
    fn window_rejects_zero_and_absurd_validity() {
        assert!(Window::starting_now(Duration::ZERO).is_err());
        assert!(Window::starting_now(Duration::from_secs(u64::MAX)).is_err());
        assert!(Window::starting_now(Duration::from_secs(10_000 * 366 * 86_400)).is_err());
    }

    #[test]
    fn hosts_become_ip_or_dns_sans() {
        assert!(matches!(subject_alt_name("10.0.0.1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(subject_alt_name("::1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(subject_alt_name("kubernetes.default.svc"), Ok(SanType::DnsName(_))));
        assert!(matches!(subject_alt_name("*.flotilla.local"), Ok(SanType::DnsName(_))));
        for bad in ["", "[::1]", "a b", "*", "x.*.example", "-bad-.example"] {
            assert!(matches!(subject_alt_name(bad), Err(PkiError::InvalidHost { .. })), "{bad:?}");
        }
    }

    #[test]
    fn server_needs_a_host() {
        let w = Window::starting_now(Duration::from_secs(60)).expect("window");
        assert!(matches!(server("api", &[], w), Err(PkiError::NoHosts)));
    }
}
