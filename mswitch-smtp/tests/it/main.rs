//! Integration tests of mswitch-smtp: the sessions wired together without sockets.

mod tls_pair;
