// Command phivault is a FHIR R4 patient-record server that encrypts every
// record at rest under per-patient keys.
//
// Usage:
//
//	phivault init     create a data folder: key file, certificate, admin token
//	phivault serve    serve the FHIR API over HTTPS
//	phivault demo     init + load a synthetic hospital + serve, in one step
//	phivault import   load FHIR bundles, resources or NDJSON into a server
//	phivault bench    put load on a server and report throughput and latency
//	phivault simulate run a simulated hospital through the detectors; score them
//	phivault keys     shred a patient, rotate keys, show key status
//	phivault users    add, list, suspend accounts; training dates; TOTP
//	phivault clients  register OAuth clients (public apps, backend systems)
//	phivault training import security-training dates from a CSV file
//	phivault audit    verify the audit trail against saved checkpoints
//	phivault detect   replay the detectors offline; ingest other systems' logs
//	phivault honeytoken make decoy patients whose every touch is an alert
//	phivault incidents open, follow and change security incidents
//	phivault reports  report something suspicious; follow and triage reports
//	phivault playbook check playbooks; dry-run one against a recorded alert
//	phivault blocks   list, add and remove blocked addresses and networks
//	phivault drill    play attack drills; measure detection and containment
//	phivault backup   encrypted, signed, incremental backups; list them
//	phivault restore  restore a backup into a new data folder, verified
//	phivault restore-drill restore the latest backup, serve it, check it; RTO/RPO
//	phivault unseal   unseal a running server that started sealed
//	phivault seal     seal a running server: drop its keys at once
//
// Run "phivault COMMAND -h" for the flags of each command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `phivault: a FHIR R4 patient-record server that encrypts every record at rest.

Usage: phivault COMMAND [flags]

Commands:
  init     create a data folder: key file, TLS certificate, admin token
  serve    serve the FHIR API over HTTPS
  demo     create a demo vault, load a synthetic hospital and serve it
  import   load FHIR bundles, resources or NDJSON into a running server
  bench    put load on a running server; report req/s and latency
  simulate run a simulated hospital through the detectors; score them
  keys     shred a patient, rotate keys, show key status
  policy   explain access decisions; test and validate Cedar policies
  users    add, list, update, suspend accounts; TOTP; training dates
  clients  register OAuth clients: public apps and backend systems
  training import security-training dates from a CSV file
  audit    verify the tamper-evident audit trail offline
  detect   replay the detectors offline; ingest other systems' logs
  honeytoken  make decoy patients whose every touch is an alert
  incidents   open, follow and change security incidents
  reports     report something suspicious; follow and triage reports
  playbook    check playbooks; dry-run one against a recorded alert
  blocks      list, add and remove blocked addresses and networks
  drill       play attack drills; measure detection and containment
  backup      encrypted, signed, incremental backups of a data folder
  restore     restore a backup into a new data folder, verified
  restore-drill  restore the latest backup into a scratch server; RTO/RPO
  unseal   unseal a running server (key-file passphrase, or KMS/HSM again)
  seal     seal a running server: drop its keys, serve no records
  version  print the version

Run "phivault COMMAND -h" for a command's flags.
`

// command is one subcommand.
type command interface {
	Run(ctx context.Context, args []string) error
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "phivault: %v\n", err)
			var h *hintError
			if errors.As(err, &h) {
				fmt.Fprintf(os.Stderr, "Try: %s\n", h.hint)
			}
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errorWithHint("no command", "phivault demo")
	}
	// Every command answers -h (or -help, --help, help) the same way: its
	// usage on stdout, exit 0. Usage printed for a mistake goes to stderr.
	help := wantsHelp(args[1:])
	if help {
		stderr = stdout
		if args[0] == "audit" && len(args) == 2 {
			fmt.Fprint(stdout, auditUsage)
			return nil
		}
	}
	var cmd command
	switch args[0] {
	case "init":
		cmd = &initCommand{stdin: os.Stdin, stdout: stdout, stderr: stderr}
	case "serve":
		cmd = &serveCommand{stdout: stdout, stderr: stderr}
	case "demo":
		cmd = &demoCommand{stdout: stdout, stderr: stderr}
	case "import":
		cmd = &importCommand{stdout: stdout, stderr: stderr}
	case "bench":
		cmd = &benchCommand{stdout: stdout, stderr: stderr}
	case "simulate":
		cmd = &simulateCommand{stdout: stdout, stderr: stderr}
	case "keys":
		cmd = &keysCommand{stdout: stdout, stderr: stderr}
	case "policy":
		cmd = &policyCommand{stdout: stdout, stderr: stderr}
	case "users":
		cmd = &usersCommand{stdout: stdout, stderr: stderr}
	case "clients":
		cmd = &clientsCommand{stdout: stdout, stderr: stderr}
	case "training":
		cmd = &trainingCommand{stdout: stdout, stderr: stderr}
	case "audit":
		cmd = &auditCommand{stdout: stdout, stderr: stderr}
	case "detect":
		cmd = &detectCommand{stdout: stdout, stderr: stderr}
	case "honeytoken":
		cmd = &honeytokenCommand{stdout: stdout, stderr: stderr}
	case "incidents":
		cmd = &incidentsCommand{stdin: os.Stdin, stdout: stdout, stderr: stderr}
	case "reports":
		cmd = &reportsCommand{stdin: os.Stdin, stdout: stdout, stderr: stderr}
	case "playbook":
		cmd = &playbookCommand{stdout: stdout, stderr: stderr}
	case "blocks":
		cmd = &blocksCommand{stdout: stdout, stderr: stderr}
	case "drill":
		cmd = &drillCommand{stdout: stdout, stderr: stderr}
	case "backup":
		cmd = &backupCommand{stdout: stdout, stderr: stderr}
	case "restore":
		cmd = &restoreCommand{stdout: stdout, stderr: stderr}
	case "restore-drill":
		cmd = &restoreDrillCommand{stdout: stdout, stderr: stderr}
	case "unseal":
		cmd = &sealCommand{unseal: true, stdin: os.Stdin, stdout: stdout, stderr: stderr}
	case "seal":
		cmd = &sealCommand{stdout: stdout, stderr: stderr}
	case "version":
		fmt.Fprintln(stdout, "phivault", version)
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return errorWithHint("unknown command "+args[0], "phivault help")
	}
	err := cmd.Run(ctx, args[1:])
	if help && errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// wantsHelp reports whether a command's arguments ask for its usage: a
// -h, -help or --help flag before any "--", or "help" as a group's first
// argument.
func wantsHelp(args []string) bool {
	if len(args) > 0 && args[0] == "help" {
		return true
	}
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}
