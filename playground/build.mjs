// Bundles the playground into dist/playground.js and dist/playground.css: no file is loaded from
// another host, so the page works offline and under a strict Content-Security-Policy.
import { build } from 'esbuild';

await build({
  entryPoints: { playground: 'src/main.jsx' },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  outdir: 'dist',
  loader: { '.js': 'jsx', '.woff': 'dataurl', '.woff2': 'dataurl', '.ttf': 'dataurl', '.svg': 'dataurl' },
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
  legalComments: 'none',
  logLevel: 'info',
});
