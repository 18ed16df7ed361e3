// Runs the console's scenarios in one process, in this order, against
// one server (e2e.TestBrowser_console): they share lib.mjs, and so its
// record of the TOTP steps each person has used, which lets both sign in
// the privacy officer without one code being refused as already used.
import './console.mjs';
import './console_officers.mjs';
