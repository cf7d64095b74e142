//! SMTP command parser: never panics; whatever parses is written (`write_command`) and parses
//! back to an equal command; every error maps to a reply.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_smtp::proto::command::{parse_command, write_command};

fuzz_target!(|data: &[u8]| {
    match parse_command(data) {
        Ok(command) => {
            let mut out = Vec::new();
            write_command(&command, &mut out);
            let line = out
                .strip_suffix(b"\r\n")
                .expect("a written command ends with CRLF");
            assert!(
                !line.contains(&b'\r') && !line.contains(&b'\n'),
                "line break inside {out:?}"
            );
            match parse_command(line) {
                Ok(again) => assert_eq!(
                    again,
                    command,
                    "written as {:?}",
                    String::from_utf8_lossy(&out)
                ),
                Err(e) => panic!(
                    "{command:?} written as {:?} does not parse: {e}",
                    String::from_utf8_lossy(&out)
                ),
            }
        }
        Err(e) => {
            let status = e.reply();
            assert!((500..600).contains(&status.code), "{e:?} -> {status}");
            assert_eq!(status.enhanced.class, 5);
        }
    }
});
