package main

import (
	"fmt"
	"io"

	"github.com/barrage-load/barrage/coord"
	"github.com/barrage-load/barrage/guard"
	"github.com/barrage-load/barrage/local"
	"github.com/barrage-load/barrage/pipeline"
	"github.com/barrage-load/barrage/proto"
	"github.com/barrage-load/barrage/report"
)

// Thresholds and graceful degradation on run and coord: a guard hangs on
// the test's pipeline, and judges the thresholds into the report at the
// end.

// runGuard hangs a guard on a local run.
func runGuard(r *local.Runner, plan *proto.Plan, ts []*report.Threshold, log io.Writer) *guard.Guard {
	g := guard.New(guard.Options{Plan: plan, Thresholds: ts, Controller: r, Log: log})
	r.With(func(p *pipeline.Pipeline) { g.Attach(p) })
	return g
}

// runGuardReport judges the thresholds of a finished local run.
func runGuardReport(r *local.Runner, g *guard.Guard, rep *report.Report) {
	r.With(func(p *pipeline.Pipeline) { g.Report(p, rep) })
}

// coordGuard hangs a guard on the coordinator's pipeline once it is made
// (a standby learns the plan only then); report judges the thresholds
// once Run has returned.
type coordGuard struct {
	g    *guard.Guard
	pipe *pipeline.Pipeline
	ts   []*report.Threshold
	log  io.Writer
}

func (cg *coordGuard) hook(o *coord.Options, c func() *coord.Coordinator) {
	o.OnPipeline = func(p *pipeline.Pipeline, plan *proto.Plan) {
		cg.pipe = p
		if cg.g == nil {
			ts := cg.ts
			if ts == nil {
				var err error
				if ts, err = report.ParseThresholds(plan.Thresholds, plan); err != nil {
					fmt.Fprintf(cg.log, "coord: the test's thresholds are not judged: %v\n", err)
					ts = nil
				}
			}
			cg.g = guard.New(guard.Options{Plan: plan, Thresholds: ts, Controller: c(), Log: cg.log})
		}
		cg.g.Attach(p)
	}
}

func (cg *coordGuard) report(rep *report.Report) {
	if cg.g != nil && cg.pipe != nil && rep != nil {
		cg.g.Report(cg.pipe, rep)
	}
}
