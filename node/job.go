package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/jetstream"
)

// jobsBucket holds the jobs of every node, so that any node (and the CLI)
// can say where one stands.
const jobsBucket = "OMS_JOBS"

// jobProgressEvery is how often a running job's progress is recorded.
const jobProgressEvery = 250 * time.Millisecond

// jobs runs this node's long operations in the background, each with a
// context that ends when the node stops, and records them in the bucket.
type jobs struct {
	kv   natsjs.KeyValue
	node string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]api.Job // by what
}

// startJobs opens the jobs bucket; stopping cancels the running jobs and
// waits for them to record how they ended.
func (n *Node) startJobs(ctx context.Context) error {
	kv, err := jetstream.OpenBucket(ctx, n.js, n.retry(), natsjs.KeyValueConfig{Bucket: jobsBucket,
		Description: "oms nodes' background jobs (rebuilds)", TTL: 7 * 24 * time.Hour, Replicas: n.cfg.Replicas,
		Storage: natsjs.FileStorage}, n.waitingFor("open bucket "+jobsBucket))
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n.jobs = &jobs{kv: kv, node: n.cfg.NodeName, ctx: runCtx, cancel: cancel, running: map[string]api.Job{}}
	n.onStop(func() { cancel(); n.jobs.wg.Wait() })
	return nil
}

// start runs a job of kind what, unless one runs already on this node (it
// is returned instead), and returns it as it starts.
func (j *jobs) start(what string, run func(ctx context.Context, progress func(done, total uint64)) (api.RebuildReport, error)) (api.Job, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if job, ok := j.running[what]; ok {
		return job, nil
	}
	job := api.Job{ID: nuid.Next(), Node: j.node, What: what, State: api.JobRunning, Started: time.Now().UTC()}
	if err := j.put(j.ctx, job); err != nil {
		return api.Job{}, err
	}
	j.running[what] = job
	var done, total atomic.Uint64
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		finished := make(chan struct{})
		go func() {
			t := time.NewTicker(jobProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					p := job
					p.Done, p.Total = done.Load(), total.Load()
					_ = j.put(j.ctx, p)
				case <-finished:
					return
				}
			}
		}()
		rep, err := run(j.ctx, func(d, t uint64) { done.Store(d); total.Store(t) })
		close(finished)
		job.Done, job.Total, job.Finished = done.Load(), total.Load(), time.Now().UTC()
		switch {
		case err == nil:
			job.State, job.Report = api.JobDone, &rep
		case j.ctx.Err() != nil:
			job.State, job.Error = api.JobCancelled, "the node stopped"
		default:
			job.State, job.Error = api.JobFailed, err.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = j.put(ctx, job)
		j.mu.Lock()
		delete(j.running, what)
		j.mu.Unlock()
	}()
	return job, nil
}

func (j *jobs) put(ctx context.Context, job api.Job) error {
	data, err := json.Marshal(job)
	if err != nil {
		return err
	}
	_, err = j.kv.Put(ctx, job.ID, data)
	return err
}

// get returns a job of any node.
func (j *jobs) get(ctx context.Context, id string) (api.Job, error) {
	e, err := j.kv.Get(ctx, id)
	if errors.Is(err, natsjs.ErrKeyNotFound) || errors.Is(err, natsjs.ErrInvalidKey) {
		return api.Job{}, fmt.Errorf("job %s: %w", id, api.ErrJobNotFound)
	}
	if err != nil {
		return api.Job{}, err
	}
	var job api.Job
	return job, json.Unmarshal(e.Value(), &job)
}
