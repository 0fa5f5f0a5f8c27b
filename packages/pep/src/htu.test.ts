import { describe, expect, it } from 'vitest';
import { htuMatches, normalizeHtu } from './htu.js';

describe('normalizeHtu (RFC 3986 §6.2.2 syntax-based, §6.2.3 scheme-based)', () => {
  it.each([
    [
      'scheme and host are lower-cased',
      'HTTPS://Server.Example.COM/token',
      'https://server.example.com/token',
    ],
    [
      'default https port is dropped',
      'https://server.example.com:443/token',
      'https://server.example.com/token',
    ],
    ['default http port is dropped', 'http://server.example.com:80/token', 'http://server.example.com/token'],
    ['an empty port is dropped', 'https://server.example.com:/token', 'https://server.example.com/token'],
    [
      'a non-default port is kept',
      'https://server.example.com:8443/token',
      'https://server.example.com:8443/token',
    ],
    [
      'the http port on https is not a default',
      'https://server.example.com:80/',
      'https://server.example.com:80/',
    ],
    ['an empty path is /', 'https://server.example.com', 'https://server.example.com/'],
    ['query and fragment are dropped', 'https://server.example.com/a?b=c#d', 'https://server.example.com/a'],
    [
      'unreserved percent-encodings are decoded',
      'https://x.example/%7euser/%41%2D%5F',
      'https://x.example/~user/A-_',
    ],
    [
      'other percent-encodings are upper-cased',
      'https://x.example/a%2fb/%c3%a9',
      'https://x.example/a%2Fb/%C3%A9',
    ],
    ['dot segments are removed', 'https://x.example/a/./b/../c', 'https://x.example/a/c'],
    ['encoded dot segments are removed', 'https://x.example/a/%2e%2E/c', 'https://x.example/c'],
    [
      'characters a path may not hold are encoded',
      'https://x.example/a{b}|c',
      'https://x.example/a%7Bb%7D%7Cc',
    ],
    ['IPv6 literals keep their brackets', 'https://[::1]:443/x', 'https://[::1]/x'],
  ])('%s', (_name, input, expected) => {
    expect(normalizeHtu(input)).toBe(expected);
  });

  it.each([
    ['the empty string', ''],
    ['a relative reference', '/token'],
    ['a bare word', 'token'],
    ['another scheme', 'ftp://server.example.com/token'],
    ['a javascript: URI', 'javascript:alert(1)'],
    ['userinfo', 'https://user:secret@server.example.com/token'],
    ['userinfo without password', 'https://user@server.example.com/token'],
    ['an empty authority', 'https:///server.example.com/token'],
    ['missing slashes', 'https:server.example.com/token'],
    ['a single slash', 'https:/server.example.com/token'],
    ['a backslash', 'https:\\\\server.example.com\\token'],
    ['a space', 'https://server.example.com/to ken'],
    ['a tab', 'https://server.example.com/to\tken'],
    ['a newline', 'https://server.example.com/token\n'],
    ['non-ASCII', 'https://server.example.com/tökén'],
    ['a broken percent-encoding', 'https://server.example.com/%zz'],
    ['a truncated percent-encoding', 'https://server.example.com/%4'],
    ['an invalid port', 'https://server.example.com:99999/'],
  ])('refuses %s', (_name, input) => {
    expect(normalizeHtu(input)).toBeUndefined();
  });
});

describe('htuMatches', () => {
  const request = 'https://api.example.com/v1/things';

  it.each([
    ['the same URL', 'https://api.example.com/v1/things'],
    ['upper-case scheme and host', 'HTTPS://API.EXAMPLE.COM/v1/things'],
    ['an explicit default port', 'https://api.example.com:443/v1/things'],
    ['a percent-encoded unreserved character', 'https://api.example.com/v1/%74hings'],
    // RFC 9449 §4.3 step 9: "ignoring any query and fragment parts" — on both sides.
    ['a query and fragment in the claim', 'https://api.example.com/v1/things?x=1#f'],
  ])('matches %s', (_name, htu) => {
    expect(htuMatches(htu, request)).toBe(true);
    expect(htuMatches(htu, `${request}?page=2`)).toBe(true);
  });

  it.each([
    ['another host', 'https://evil.example.com/v1/things'],
    ['a sibling subdomain', 'https://api.example.com.evil.example/v1/things'],
    ['another path', 'https://api.example.com/v1/other'],
    ['a path prefix', 'https://api.example.com/v1'],
    ['a trailing slash', 'https://api.example.com/v1/things/'],
    ['another path case', 'https://api.example.com/v1/Things'],
    ['http instead of https', 'http://api.example.com/v1/things'],
    ['another port', 'https://api.example.com:8443/v1/things'],
    ['an encoded slash', 'https://api.example.com/v1%2Fthings'],
    ['an invalid URI', 'https://api.example.com/v1/th ings'],
  ])('does not match %s', (_name, htu) => {
    expect(htuMatches(htu, request)).toBe(false);
  });

  it('never matches when the request URL itself is invalid', () => {
    expect(htuMatches('https://x.example/%zz', 'https://x.example/%zz')).toBe(false);
  });
});
