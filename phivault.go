// Package phivault defines the domain of the phivault patient-record server:
// FHIR resources and their versions, the services that read and write them, the
// storage seam that only ever sees ciphertext, key custody, and the errors that
// are safe to show to a caller.
//
// The package holds types and interfaces only. Implementations live in packages
// named for their technology or concern (fhir, envelope, keyring, sqlite,
// postgres, api, server) and cmd/phivault wires them together.
//
// # Request path
//
//	TLS → authenticate → api handler → RecordService (vault)
//	        → Sealer (envelope: encrypt, decrypt, blind-index tokens)
//	        → Store (sqlite, postgres: ciphertext and tokens only)
package phivault
