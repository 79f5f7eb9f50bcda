package redistest

import (
	"errors"
	"net"
	"strconv"
	"sync"
)

// busPortOffset is the distance between a node's client port and its cluster
// bus port; Redis uses port+10000 unless cluster-port is set.
const busPortOffset = 10000

// handedOut remembers every port (client and bus) given to a node by this
// process, so that two clusters started in parallel in one test binary never
// receive the same port, even though each port was closed again right after
// it was found to be free.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// freePort returns a port P on 127.0.0.1 such that P and P+10000 were both
// free a moment ago and neither has been handed out before by this process.
//
// Between the check and redis-server binding the ports another process may
// take one of them; callers detect that from the node's log ("Address already
// in use") and ask for another port.
func freePort() (int, error) {
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		if p+busPortOffset > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+busPortOffset))
		if err != nil {
			l.Close()
			continue
		}
		bus.Close()
		l.Close()

		handedOut.Lock()
		if handedOut.ports == nil {
			handedOut.ports = make(map[int]bool)
		}
		if handedOut.ports[p] || handedOut.ports[p+busPortOffset] {
			handedOut.Unlock()
			continue
		}
		handedOut.ports[p] = true
		handedOut.ports[p+busPortOffset] = true
		handedOut.Unlock()
		return p, nil
	}
	return 0, errors.New("redistest: no free port P with P+10000 also free on 127.0.0.1 after 200 tries")
}
