//! Integration tests of mswitchd: the daemon as a process, with real peers on loopback.

mod common;
mod delivery;
mod load;
mod loadkit;
mod management;
mod management_tcp;
mod metrics;
mod policy;
mod routing;
mod snmp;
mod x400;
mod x400_gateway;
mod x400_p3;
mod x400_shared;
