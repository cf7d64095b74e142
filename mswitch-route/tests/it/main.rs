//! Integration tests of mswitch-route against real servers on loopback: dnsmasq for MX
//! routing, OpenLDAP slapd for LASER and directory configuration.

mod directory;
mod dns;
mod laser;
