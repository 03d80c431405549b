package fleet

import (
	"errors"

	"github.com/go-zookeeper/zk"
)

// Watch keeps at most one ZooKeeper watch pending on one path.
//
// Hazard: go-zookeeper keeps a channel per GetW/ExistsW/ChildrenW call
// until the node changes, so a loop that sets a new watch on every pass
// over a node that never changes leaks one channel per pass (the
// coordinator once set two every 250 ms). A Watch sets a new one only
// after the last one fired; the reads in between are plain reads.
type Watch struct {
	ch <-chan zk.Event
}

// C is the pending watch's channel (nil when none is pending: a nil
// channel is never ready in a select).
func (w *Watch) C() <-chan zk.Event { return w.ch }

// Fired marks the pending watch as used: call it after receiving from C.
func (w *Watch) Fired() { w.ch = nil }

// Get reads path's data and keeps a watch on it (a data watch, or an
// existence watch while the node is missing, in which case the error is
// zk.ErrNoNode).
func (w *Watch) Get(c *zk.Conn, path string) ([]byte, *zk.Stat, error) {
	if w.ch != nil {
		return c.Get(path)
	}
	data, stat, ch, err := c.GetW(path)
	if errors.Is(err, zk.ErrNoNode) {
		ok, _, ch2, err2 := c.ExistsW(path)
		if err2 != nil {
			return nil, nil, err2
		}
		w.ch = ch2
		if ok {
			// Created between the two calls: read it now; the existence
			// watch fires at the next change.
			return c.Get(path)
		}
		return nil, nil, zk.ErrNoNode
	}
	if err != nil {
		return nil, nil, err
	}
	w.ch = ch
	return data, stat, nil
}

// Children lists path's children and keeps a child watch on it.
func (w *Watch) Children(c *zk.Conn, path string) ([]string, error) {
	if w.ch != nil {
		kids, _, err := c.Children(path)
		return kids, err
	}
	kids, _, ch, err := c.ChildrenW(path)
	if err != nil {
		return nil, err
	}
	w.ch = ch
	return kids, nil
}

// Exists tells whether path exists and keeps a watch on it.
func (w *Watch) Exists(c *zk.Conn, path string) (bool, error) {
	if w.ch != nil {
		ok, _, err := c.Exists(path)
		return ok, err
	}
	ok, _, ch, err := c.ExistsW(path)
	if err != nil {
		return false, err
	}
	w.ch = ch
	return ok, nil
}
