// Starts GraphiQL on the page served at GET /graphql. Loaded as a static file from the same
// origin (no inline script), so the page's Content-Security-Policy can say script-src 'self'.
//
// Queries and mutations go to /graphql over HTTP; subscriptions go to /graphql/ws over a
// WebSocket (graphql-transport-ws, through the graphql-ws client bundled in graphiql.min.js).
// A token is set in the Headers editor as {"Authorization": "Bearer <token>"}: it is sent with
// every HTTP request and, for subscriptions, as the connection_init payload. Headers are not
// persisted in the browser's storage (shouldPersistHeaders: false).
(function () {
  'use strict';

  var scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  var fetcher = GraphiQL.createFetcher({
    url: '/graphql',
    subscriptionUrl: scheme + '//' + window.location.host + '/graphql/ws',
  });

  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false,
    })
  );
})();
