//! `pnc-pki exi …` subcommands (placeholder, filled below).
