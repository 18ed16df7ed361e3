package backup

import (
	"context"
	"errors"
	"sync"
)

// putsInFlight is how many chunk objects a backup writes at once. A
// target's Put is durable before it returns (a folder fsyncs the file and
// the folder, S3 answers after the write): one at a time, a backup waits
// for each in turn, while several in flight share the disk's flushes and
// the network's round trips.
const putsInFlight = 8

// A putter writes a backup's new chunks to the target, putsInFlight at a
// time, and counts them in the result. The backup waits for it before it
// writes the manifest: a snapshot exists only once every chunk is stored.
type putter struct {
	ctx  context.Context
	t    Target
	slot chan struct{}
	wg   sync.WaitGroup

	mu  sync.Mutex
	res *Result
	err error // the first failure
}

func newPutter(ctx context.Context, t Target, res *Result) *putter {
	return &putter{ctx: ctx, t: t, slot: make(chan struct{}, putsInFlight), res: res}
}

// put writes obj as name once a slot is free. It returns the first
// failure of any put so far, so the caller stops early.
func (p *putter) put(name string, obj []byte) error {
	select {
	case p.slot <- struct{}{}:
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
	if err := p.failed(); err != nil {
		<-p.slot
		return err
	}
	p.wg.Go(func() {
		defer func() { <-p.slot }()
		err := p.t.Put(p.ctx, name, obj)
		p.mu.Lock()
		defer p.mu.Unlock()
		switch {
		case errors.Is(err, ErrExist): // stored by a backup running alongside
		case err != nil:
			if p.err == nil {
				p.err = err
			}
		default:
			p.res.NewChunks++
			p.res.BytesWritten += int64(len(obj))
		}
	})
	return nil
}

func (p *putter) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// wait waits for the puts in flight and returns the first failure.
func (p *putter) wait() error {
	p.wg.Wait()
	return p.failed()
}
