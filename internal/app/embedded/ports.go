package embedded

import (
	"fmt"
	"net"
	"runtime"
)

// freePorts returns n distinct TCP ports that are free on ip.
//
// All listeners stay open until every port is chosen, so the ports differ
// from each other. On Linux each port is then parked in TIME_WAIT (connect,
// then close from the server side): the kernel does not hand a TIME_WAIT port
// to another bind(":0") for about a minute, yet the Temporal services can
// still bind it explicitly because Go sets SO_REUSEADDR. That closes the
// usual race between picking a port and binding it (same trick as
// go.temporal.io/server/common/testing/freeport).
func freePorts(ip string, n int) ([]int, error) {
	listeners := make([]*net.TCPListener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			return nil, fmt.Errorf("pick free port on %s: %w", ip, err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		// These allocate ephemeral ports sequentially; parking them would only
		// use up their smaller range faster.
		return ports, nil
	}
	for _, l := range listeners {
		parkInTimeWait(l)
	}
	return ports, nil
}

func parkInTimeWait(l *net.TCPListener) {
	addr := *l.Addr().(*net.TCPAddr)
	if addr.IP.IsUnspecified() {
		addr.IP = net.IPv4(127, 0, 0, 1)
	}
	c, err := net.DialTCP("tcp", nil, &addr)
	if err != nil {
		return // best effort: the port is still free, just not parked
	}
	defer c.Close()
	s, err := l.AcceptTCP()
	if err != nil {
		return
	}
	// Closing the accepted side first puts the port itself in TIME_WAIT.
	_ = s.Close()
}

// checkPortFree reports a clear error when a port the caller asked for is
// taken, instead of a failure deep inside the frontend's start-up.
func checkPortFree(ip string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
	if err != nil {
		return err
	}
	return l.Close()
}
