//! `nudge serve`: the SQLite store, the in-process bus and timer loop, the HTTP server and local mail.
