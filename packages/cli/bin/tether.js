#!/usr/bin/env node
// Checked in so that npm links the `tether` command at install time, before the first build.
import '../bundle/tether.js';
