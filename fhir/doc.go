// Package fhir implements the FHIR R4 JSON wire format: parsing and
// validation against the R4 definitions, search parameters, and Patient
// compartment membership. It does no I/O.
package fhir
