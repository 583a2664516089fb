#!/usr/bin/env node
// Writes the small captioned image folders the text-to-image recipe and tests use
// (recipes/data/shapes/{train,test}: PNGs + metadata.jsonl). Deterministic; rerun to regenerate.
'use strict';
const fs = require('fs');
const path = require('path');
const sharp = require('sharp');

const COLORS = { red: '#d62728', green: '#2ca02c', blue: '#1f77b4', orange: '#ff7f0e', purple: '#9467bd', black: '#222222' };
const SHAPES = {
  circle: (c) => `<circle cx="32" cy="32" r="20" fill="${c}"/>`,
  square: (c) => `<rect x="13" y="13" width="38" height="38" fill="${c}"/>`,
  triangle: (c) => `<polygon points="32,10 54,52 10,52" fill="${c}"/>`,
};

async function write(dir, items) {
  fs.mkdirSync(dir, { recursive: true });
  const lines = [];
  for (const [color, shape] of items) {
    const file = `${color}-${shape}.png`;
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#f4f1e8"/>${SHAPES[shape](COLORS[color])}</svg>`;
    await sharp(Buffer.from(svg)).png().toFile(path.join(dir, file));
    lines.push(JSON.stringify({ file_name: file, text: `a ${color} ${shape}, flat style` }));
  }
  fs.writeFileSync(path.join(dir, 'metadata.jsonl'), lines.join('\n') + '\n');
}

async function main() {
  const root = path.resolve(process.argv[2] ?? path.join(__dirname, '..', 'recipes', 'data', 'shapes'));
  const train = [];
  for (const color of ['red', 'green', 'blue', 'orange']) for (const shape of Object.keys(SHAPES)) train.push([color, shape]);
  await write(path.join(root, 'train'), train);
  await write(path.join(root, 'test'), [
    ['purple', 'circle'],
    ['purple', 'square'],
    ['black', 'triangle'],
    ['black', 'circle'],
  ]);
  console.log(`wrote ${train.length} training and 4 held-out images under ${root}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
