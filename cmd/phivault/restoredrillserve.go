package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/phivault/phivault/backup/restoredrill"
	"github.com/prometheus/client_golang/prometheus"
)

// restoreDrillFlags are serve's -restore-drill-* flags.
type restoreDrillFlags struct {
	every, from, identity string
}

// registerRestoreDrillFlags registers serve's -restore-drill-every,
// -restore-drill-from and -restore-drill-identity, whose defaults are
// PHIVAULT_RESTORE_DRILL_EVERY, _FROM and _IDENTITY.
func registerRestoreDrillFlags(fs *flag.FlagSet) *restoreDrillFlags {
	f := new(restoreDrillFlags)
	fs.StringVar(&f.every, "restore-drill-every", os.Getenv("PHIVAULT_RESTORE_DRILL_EVERY"),
		"run a restore drill of the latest backup this often, e.g. 24h; history in DATA/restore-drills (see phivault restore-drill; env PHIVAULT_RESTORE_DRILL_EVERY)")
	fs.StringVar(&f.from, "restore-drill-from", os.Getenv("PHIVAULT_RESTORE_DRILL_FROM"), "with -restore-drill-every: the backup folder (env PHIVAULT_RESTORE_DRILL_FROM)")
	fs.StringVar(&f.identity, "restore-drill-identity", os.Getenv("PHIVAULT_RESTORE_DRILL_IDENTITY"), "with -restore-drill-every: the backup's age identity file (env PHIVAULT_RESTORE_DRILL_IDENTITY)")
	return f
}

// start runs the schedule the flags ask for, if any, until ctx ends.
func (f *restoreDrillFlags) start(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer) error {
	s, err := f.schedule(cfg, logger, reg)
	if s != nil {
		go s.run(ctx)
	}
	return err
}

// schedule checks the flags and returns the schedule of restore drills of
// the vault cfg serves; nil if -restore-drill-every is not set.
func (f *restoreDrillFlags) schedule(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*restoreDrillSchedule, error) {
	if f.every == "" {
		return nil, nil
	}
	every, err := time.ParseDuration(f.every)
	if err != nil || every < time.Minute {
		return nil, errorWithHint("-restore-drill-every must be a duration of a minute or more", "phivault serve -restore-drill-every 24h -restore-drill-from /mnt/backup -restore-drill-identity backup-identity.txt")
	}
	if f.from == "" || f.identity == "" {
		return nil, errorWithHint("-restore-drill-every needs -restore-drill-from and -restore-drill-identity", "phivault serve -restore-drill-every 24h -restore-drill-from /mnt/backup -restore-drill-identity backup-identity.txt")
	}
	o, err := restoreDrillOptions(string(cfg.Data), f.from, f.identity, "", cfg.Passphrase)
	if err != nil {
		return nil, err
	}
	s := &restoreDrillSchedule{every: every, data: string(cfg.Data), opts: o, logger: logger,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phivault_restore_drills_total",
			Help: "Scheduled restore drills, by result (pass, fail, error)."}, []string{"result"}),
		rto: prometheus.NewGauge(prometheus.GaugeOpts{Name: "phivault_restore_drill_rto_seconds",
			Help: "Recovery time of the last scheduled restore drill that read through the API."}),
	}
	reg.MustRegister(s.runs, s.rto)
	return s, nil
}

// restoreDrillSchedule runs a restore drill every interval, keeping the
// history in the data folder. A failed drill is logged with its failures
// (steps and reasons: no PHI) and counted.
type restoreDrillSchedule struct {
	every  time.Duration
	data   string
	opts   restoredrill.Options
	logger *slog.Logger
	runs   *prometheus.CounterVec
	rto    prometheus.Gauge
}

func (s *restoreDrillSchedule) run(ctx context.Context) {
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rep, err := restoredrill.Run(ctx, s.opts)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.runs.WithLabelValues("error").Inc()
			s.logger.Error("restore drill could not run", "error", err.Error())
			continue
		}
		if rep.RTOMS >= 0 {
			s.rto.Set(float64(rep.RTOMS) / 1000)
		}
		if rep.Pass {
			s.runs.WithLabelValues("pass").Inc()
			s.logger.Info("restore drill passed", "snapshot", rep.Snapshot, "rto_ms", rep.RTOMS, "rpo_ms", rep.RPOMS)
		} else {
			s.runs.WithLabelValues("fail").Inc()
			s.logger.Error("restore drill failed", "snapshot", rep.Snapshot, "failures", rep.Failures)
		}
		if err := restoredrill.NewHistory(s.data).Append(rep); err != nil {
			s.logger.Error("restore drill history not kept", "error", err.Error())
		}
	}
}
