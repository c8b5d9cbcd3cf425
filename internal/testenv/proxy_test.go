package testenv

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// TestProxyCutBlockHeal: bytes pass through, Cut resets the connection and
// refuses new ones, Block holds bytes until Heal.
func TestProxyCutBlockHeal(t *testing.T) {
	ln, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						c.Close()
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	p := StartProxy(t, ln.Addr().String())
	echo := func(c net.Conn, r *bufio.Reader, msg string, wait time.Duration) (string, error) {
		c.SetDeadline(time.Now().Add(wait))
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			return "", err
		}
		return r.ReadString('\n')
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if got, err := echo(c, r, "a", 5*time.Second); err != nil || got != "a\n" {
		t.Fatalf("echo through the proxy: %q %v", got, err)
	}
	p.Block()
	if got, err := echo(c, r, "b", 300*time.Millisecond); err == nil {
		t.Fatalf("echo while blocked: %q", got)
	}
	p.Heal()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "b\n" {
		t.Fatalf("held bytes after Heal: %q %v", got, err)
	}
	p.Cut()
	if _, err := echo(c, r, "c", 5*time.Second); err == nil {
		t.Fatal("connection survived Cut")
	}
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		c2.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := bufio.NewReader(c2).ReadString('\n'); err == nil {
			t.Fatal("new connection served while cut")
		}
		c2.Close()
	}
	p.Heal()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := echo(c3, bufio.NewReader(c3), "d", 5*time.Second); err != nil || got != "d\n" {
		t.Fatalf("echo after Heal: %q %v", got, err)
	}
}
