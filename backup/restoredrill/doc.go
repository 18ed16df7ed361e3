// Package restoredrill implements restore drills: it proves that the
// latest backup of a phivault data folder can be brought back, and
// measures how long that takes.
//
// [Run] restores a snapshot (the latest by default) with [backup.Restore]
// into a scratch folder, checks every restored file against the SHA-256
// the signed manifest promises, counts the rows of every table of every
// restored SQLite database (after PRAGMA quick_check), starts a real
// phivault server process on the scratch folder on a random loopback
// port, reads a sample of patients through the FHIR API, stops the server,
// runs "phivault audit verify" on the scratch folder, and deletes the
// scratch folder, always, even when a step failed. It returns a [Report]:
// each step and its outcome, the recovery time (RTO: from the start of the
// restore to the first successful API read) and the recovery point (RPO:
// from the snapshot's time to the start of the drill). [History] keeps
// the reports as JSON lines.
//
// # What is compared with what
//
// The restored files are compared with the manifest (SHA-256 of each
// file, re-read from disk after the restore synced it). The record counts
// are reported, not compared: the live vault has moved on since the
// snapshot and keeps no count as of the snapshot's time, so no honest
// source figure exists to compare them with; the history shows their
// trend from one drill to the next. What is compared with the source is
// the audit trail: the manifest's signed checkpoint must be one the live
// vault published (found in its audit-checkpoints.log, when the source
// data folder is local), and "phivault audit verify" checks that the
// restored trail extends it.
//
// # Isolation
//
// The scratch server must never touch the live vault's outside world. It
// gets a scratch witness file seeded from the restored folder's own
// audit-checkpoints.log and the manifest's checkpoint (never the live
// witness file), the restored folder's record of its witness path is
// pointed at it, and it gets a fresh bootstrap admin token, written into
// the scratch folder only and forgotten with it: the drill needs no live
// credential. Its environment is an allow-list ([ServerEnv]): the keyring
// settings and the key-file passphrase, no remote witness, syslog, alert
// or schedule setting. It listens on 127.0.0.1 only.
//
// Reports hold ids, names, counts, hashes and times only: no PHI, no
// token or passphrase.
package restoredrill
