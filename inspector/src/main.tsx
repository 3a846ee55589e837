/**
 * Entry point: one connection to this page's own server (`/rpc`), one sessions index following
 * every session, and the UI on top. Nothing here is specific to a deployment: the page works
 * wherever the runtime serves it.
 */
import { render } from 'preact';
import { App } from './App.js';
import { Connection, rpcUrlOf } from './connection.js';
import { SessionIndex } from './sessionIndex.js';
import './styles.css';

const conn = new Connection(rpcUrlOf(location));
const index = new SessionIndex(conn);
index.attach();
conn.start();
render(<App conn={conn} index={index} />, document.getElementById('app')!);
