// Package backup implements encrypted, deduplicated, signed backups of a
// phivault data folder, and their verified restore.
//
// # What a backup holds
//
// A backup is a [Snapshot] of the data folder ([TakeSnapshot]): every
// SQLite database copied consistently with SQLite's online backup API while
// the server may be running (never a byte copy of a live WAL-mode file),
// the audit journal's
// segments, and the folder's small files: keyring.age, tls/, the admin and
// SCIM token hashes, the audit signer and verifier keys, the checkpoint
// log, install-id, signin.key, store, the evidence folder. Left out: SQLite's
// -wal and -shm files (the copies are whole databases), temporary files,
// and the backup key cache (backup.key), which the backup holds in its
// own keys object.
//
// Restoring also needs what is not in the folder: the key-file passphrase
// (or the KMS or HSM that holds the keys), the outside audit witness file,
// and the server's flags and any policies or playbooks configured outside
// the folder.
//
// # Format
//
// A [Target] holds write-once objects:
//
//	keys              the key set, age-encrypted to the operator's recipients
//	chunks/<id>       a chunk of a file: nonce || XChaCha20-Poly1305(data)
//	snapshots/<id>    a signed manifest: nonce || XChaCha20-Poly1305(note)
//	verified/<id>     a verification mark: nonce || XChaCha20-Poly1305(JSON)
//
// Files are cut into chunks by content-defined chunking
// (github.com/restic/chunker, with a random polynomial per key set), so a
// second backup after a small change stores about the size of the change.
// A chunk's id is HMAC-SHA256 of its plaintext under the key set's id key:
// a holder of the backup without the keys learns neither contents nor
// which chunks are equal to data they know. Each chunk is sealed under the
// data key with its id as additional data, each manifest with its snapshot
// id, so objects cannot be swapped.
//
// A [Manifest] lists the files, their modes, sizes, SHA-256 and chunks, the
// time, and the audit trail's latest signed checkpoint. It is a signed note
// (golang.org/x/mod/sumdb/note) under the audit checkpoint key, so the one
// verifier key (audit-verifier.pub) checks the audit trail, evidence
// packages and backups.
//
// # Keys
//
// The key set (data key, id key, chunker polynomial, verifier key) is made
// when a target is first used and stored in the target encrypted to one or
// more age X25519 recipients: restoring needs one of their identities. Keep
// the identities offline (escrow), separately from the backups. The backing
// up host keeps the key set in its data folder (backup.key, mode 0600) so
// later backups need no identity; it reveals nothing the folder itself does
// not already hold.
//
// [Restore] checks the manifest's signature and every chunk (AEAD and
// HMAC), writes into a temporary folder beside the destination and renames
// it at the end: a failure leaves nothing at the destination.
//
// # Verification and pruning
//
// [Verify] makes the same checks without writing files and records a
// [Mark] (verified/<id>). [Plan] applies a retention [Policy] (keep last,
// daily, weekly, monthly, within), and [Prune] removes what it drops:
// manifests first, then the chunks no remaining snapshot names. The newest
// snapshot with a mark is never removed, and nothing is removed while no
// snapshot has one. Prune and Backup must not run against one target at
// the same time.
package backup
