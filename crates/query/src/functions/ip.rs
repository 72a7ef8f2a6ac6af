//! The IP predicates of reference §5.5: `isValidIp`, `isValidIpV4`, `isValidIpV6`,
//! `isIpInSubnet`, `isIpv4InSubnet`, `isIpv6InSubnet`. A missing value or a malformed subnet
//! gives `false` (never an error), so `not isValidIp(f)` selects events without a valid
//! address, as the function names promise.

use std::net::IpAddr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{all_scalar, rows_for, shape, text_arg};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IpCheck {
    Valid,
    ValidV4,
    ValidV6,
    InSubnet,
    V4InSubnet,
    V6InSubnet,
}

impl IpCheck {
    pub(crate) const ALL: [IpCheck; 6] = [
        IpCheck::Valid,
        IpCheck::ValidV4,
        IpCheck::ValidV6,
        IpCheck::InSubnet,
        IpCheck::V4InSubnet,
        IpCheck::V6InSubnet,
    ];

    fn name(self) -> &'static str {
        match self {
            IpCheck::Valid => "isValidIp",
            IpCheck::ValidV4 => "isValidIpV4",
            IpCheck::ValidV6 => "isValidIpV6",
            IpCheck::InSubnet => "isIpInSubnet",
            IpCheck::V4InSubnet => "isIpv4InSubnet",
            IpCheck::V6InSubnet => "isIpv6InSubnet",
        }
    }

    /// The name as DataFusion's SQL looks it up (lower case).
    pub(crate) fn lower_name(self) -> &'static str {
        match self {
            IpCheck::Valid => "isvalidip",
            IpCheck::ValidV4 => "isvalidipv4",
            IpCheck::ValidV6 => "isvalidipv6",
            IpCheck::InSubnet => "isipinsubnet",
            IpCheck::V4InSubnet => "isipv4insubnet",
            IpCheck::V6InSubnet => "isipv6insubnet",
        }
    }

    fn arity(self) -> usize {
        match self {
            IpCheck::Valid | IpCheck::ValidV4 | IpCheck::ValidV6 => 1,
            _ => 2,
        }
    }

    fn family_ok(self, ip: &IpAddr) -> bool {
        match self {
            IpCheck::ValidV4 | IpCheck::V4InSubnet => ip.is_ipv4(),
            IpCheck::ValidV6 | IpCheck::V6InSubnet => ip.is_ipv6(),
            _ => true,
        }
    }
}

/// A CIDR block `address/prefix` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subnet {
    network: IpAddr,
    prefix: u32,
}

impl Subnet {
    pub(crate) fn parse(s: &str) -> Option<Subnet> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u32>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Subnet {
            network: addr,
            prefix,
        })
    }

    pub(crate) fn contains(&self, ip: &IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix).unwrap_or(0);
                u32::from(n) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix).unwrap_or(0);
                u128::from(n) & mask == u128::from(*a) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct IpFn {
    kind: IpCheck,
    signature: Signature,
}

impl IpFn {
    pub(crate) fn new(kind: IpCheck) -> Self {
        IpFn {
            kind,
            signature: Signature::any(kind.arity(), Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IpFn {
    fn name(&self) -> &str {
        self.kind.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = rows_for(&args.args, args.number_rows);
        let ips = text_arg(&args.args[0], rows)?;
        let subnets = match args.args.get(1) {
            Some(a) => Some(text_arg(a, rows)?),
            None => None,
        };
        // The subnet is nearly always a literal: parse each distinct text once.
        let mut last: Option<(String, Option<Subnet>)> = None;
        let out: BooleanArray = (0..rows)
            .map(|row| {
                let Some(ip) = ips
                    .is_valid(row)
                    .then(|| ips.value(row).trim().parse::<IpAddr>().ok())
                    .flatten()
                else {
                    return Some(false);
                };
                if !self.kind.family_ok(&ip) {
                    return Some(false);
                }
                let Some(subnets) = &subnets else {
                    return Some(true);
                };
                if subnets.is_null(row) {
                    return Some(false);
                }
                let text = subnets.value(row);
                let subnet = match &last {
                    Some((t, s)) if t == text => *s,
                    _ => {
                        let s = Subnet::parse(text);
                        last = Some((text.to_string(), s));
                        s
                    }
                };
                Some(subnet.is_some_and(|s| s.contains(&ip)))
            })
            .collect();
        shape(Arc::new(out), all_scalar(&args.args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_contain_their_addresses() {
        let s = Subnet::parse("10.0.0.0/8").unwrap();
        assert!(s.contains(&"10.1.2.3".parse().unwrap()));
        assert!(!s.contains(&"11.0.0.1".parse().unwrap()));
        assert!(!s.contains(&"::1".parse().unwrap()));
        let s6 = Subnet::parse("2001:db8::/32").unwrap();
        assert!(s6.contains(&"2001:db8:1::5".parse().unwrap()));
        assert!(!s6.contains(&"2001:db9::1".parse().unwrap()));
        assert!(
            Subnet::parse("0.0.0.0/0")
                .unwrap()
                .contains(&"8.8.8.8".parse().unwrap())
        );
        assert_eq!(Subnet::parse("10.0.0.0/33"), None);
        assert_eq!(Subnet::parse("nonsense"), None);
    }
}
