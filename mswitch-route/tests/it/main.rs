//! Integration tests of mswitch-route against real servers on loopback: dnsmasq for MX
//! routing, OpenLDAP slapd for LASER.

mod dns;
mod laser;
