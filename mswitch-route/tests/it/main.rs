//! Integration tests of mswitch-route against real servers on loopback: dnsmasq for MX
//! routing, OpenLDAP slapd for LASER, directory configuration and X.400 routing trees.

mod directory;
mod dns;
mod laser;
mod x400;
