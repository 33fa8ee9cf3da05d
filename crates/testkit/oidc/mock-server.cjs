// A real OpenID Connect provider for the tests: oauth2-mock-server on localhost at a
// free port. Prints the issuer URL on its first line, then obeys commands on stdin, one
// per line, answering "ok" to each:
//   sub <id>       the subject of the next ID tokens
//   picture <url>  the picture claim of the next ID tokens
//   tamper         alter the payload of the next ID tokens (the signature no longer matches)
//   honest         stop altering
// Needs NODE_PATH to hold oauth2-mock-server (see src/oidc.rs; installed in target/oidc).
'use strict';
const { OAuth2Server } = require('oauth2-mock-server');
const readline = require('node:readline');

const state = { sub: 'idp-user-4711', picture: undefined, tamper: false };

(async () => {
  const server = new OAuth2Server();
  await server.issuer.keys.generate('RS256');
  server.service.on('beforeTokenSigning', (token) => {
    token.payload.sub = state.sub;
    token.payload.nickname = 'Mock-Nick-5521';
    if (state.picture) token.payload.picture = state.picture;
  });
  server.service.on('beforeResponse', (response) => {
    if (!state.tamper || !response.body.id_token) return;
    const [h, p, s] = response.body.id_token.split('.');
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    payload.sub = 'someone-else';
    response.body.id_token = [h, Buffer.from(JSON.stringify(payload)).toString('base64url'), s].join('.');
  });
  await server.start(0, 'localhost');
  process.stdout.write(server.issuer.url + '\n');
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, ...rest] = line.trim().split(' ');
    if (cmd === 'sub') state.sub = rest.join(' ');
    else if (cmd === 'picture') state.picture = rest.join(' ');
    else if (cmd === 'tamper') state.tamper = true;
    else if (cmd === 'honest') state.tamper = false;
    process.stdout.write('ok\n');
  });
  rl.on('close', async () => {
    await server.stop();
    process.exit(0);
  });
})().catch((e) => {
  process.stderr.write(String(e) + '\n');
  process.exit(1);
});
